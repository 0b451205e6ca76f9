{{/*
Secrets and certificates reach statesync as files, never as environment values: one projected
volume, read-only, mode 0440 (owner and the pod's fsGroup), under statesync.secretsDir. Its
sources are the chart's own Secret (mongo.uri, kafka.sasl.password given as values) and the
existing Secrets named by mongo.existingSecret, kafka.sasl.existingSecret, kafka.tls.existingSecret
and mongo.tls.existingSecret. statesync reads the files at start (STATESYNC_*_FILE, librdkafka's
ssl.*.location, the driver's tlsCAFile/tlsCertificateKeyFile): a rotated Secret takes effect when
the pod restarts. Same scope as the other helpers.
*/}}

{{- define "statesync.secretsDir" -}}/etc/statesync/secrets{{- end }}

{{/* The file a secret is mounted as, by its name: (list . "mongo-uri"). */}}
{{- define "statesync.secretFile" -}}
{{- printf "%s/%s" (include "statesync.secretsDir" (index . 0)) (index . 1) }}
{{- end }}

{{/* Volume names: in sidecar mode they share the service pod's volume names, so they carry the container's. */}}
{{- define "statesync.secretsVolumeName" -}}
{{- printf "%s-secrets" (ternary .Values.sidecar.containerName "statesync" (eq .Values.mode "sidecar")) }}
{{- end }}

{{- define "statesync.oidcTokenVolumeName" -}}
{{- printf "%s-oidc-token" (ternary .Values.sidecar.containerName "statesync" (eq .Values.mode "sidecar")) }}
{{- end }}

{{/* The projected volume's sources, as a YAML list at column 0; empty when nothing is mounted. */}}
{{- define "statesync.secretSources" -}}
{{- $own := list }}
{{- if and .Values.mongo.uri (not .Values.mongo.existingSecret) }}{{ $own = append $own (dict "key" "mongo-uri" "path" "mongo-uri") }}{{ end }}
{{- if and .Values.kafka.sasl.password (not .Values.kafka.sasl.existingSecret) }}{{ $own = append $own (dict "key" "sasl-password" "path" "kafka-sasl-password") }}{{ end }}
{{- $sources := list }}
{{- if $own }}
{{- $sources = append $sources (dict "secret" (dict "name" (include "statesync.secretName" .) "items" $own)) }}
{{- end }}
{{- with .Values.mongo.existingSecret }}
{{- $sources = append $sources (dict "secret" (dict "name" . "items" (list (dict "key" $.Values.mongo.existingSecretKey "path" "mongo-uri")))) }}
{{- end }}
{{- with .Values.kafka.sasl.existingSecret }}
{{- $sources = append $sources (dict "secret" (dict "name" . "items" (list (dict "key" $.Values.kafka.sasl.existingSecretKey "path" "kafka-sasl-password")))) }}
{{- end }}
{{- with .Values.kafka.tls }}{{ if .existingSecret }}
{{- $items := list }}
{{- with .caKey }}{{ $items = append $items (dict "key" . "path" "kafka-ca.crt") }}{{ end }}
{{- if .clientCertificate }}
{{- $items = append $items (dict "key" .certificateKey "path" "kafka-client.crt") }}
{{- $items = append $items (dict "key" .keyKey "path" "kafka-client.key") }}
{{- end }}
{{- $sources = append $sources (dict "secret" (dict "name" .existingSecret "items" $items)) }}
{{- end }}{{ end }}
{{- with .Values.mongo.tls }}{{ if .existingSecret }}
{{- $items := list }}
{{- with .caKey }}{{ $items = append $items (dict "key" . "path" "mongo-ca.crt") }}{{ end }}
{{- if .clientCertificate }}{{ $items = append $items (dict "key" .certificateKeyKey "path" "mongo-client.pem") }}{{ end }}
{{- $sources = append $sources (dict "secret" (dict "name" .existingSecret "items" $items)) }}
{{- end }}{{ end }}
{{- if $sources }}{{ toYaml $sources }}{{ end }}
{{- end }}

{{/* The pod's volumes for statesync, as a YAML list at column 0 (possibly empty). */}}
{{- define "statesync.volumes" -}}
{{- with include "statesync.secretSources" . }}
- name: {{ include "statesync.secretsVolumeName" $ }}
  projected:
    defaultMode: 288 # 0440: readable by the owner and the pod's fsGroup, never by others
    sources:
      {{- . | nindent 6 }}
{{- end }}
{{- with .Values.mongo.oidcToken }}{{ if .enabled }}
- name: {{ include "statesync.oidcTokenVolumeName" $ }}
  projected:
    defaultMode: 288
    sources:
      - serviceAccountToken:
          audience: {{ .audience | toJson }}
          expirationSeconds: {{ .expirationSeconds | int64 }}
          path: token
{{- end }}{{ end }}
{{- end }}

{{/* The container's mounts of those volumes, read-only, as a YAML list at column 0 (possibly empty). */}}
{{- define "statesync.volumeMounts" -}}
{{- if include "statesync.secretSources" . }}
- name: {{ include "statesync.secretsVolumeName" . }}
  mountPath: {{ include "statesync.secretsDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.mongo.oidcToken.enabled }}
- name: {{ include "statesync.oidcTokenVolumeName" . }}
  mountPath: /var/run/secrets/kubernetes.io/serviceaccount
  readOnly: true
{{- end }}
{{- end }}

{{/*
librdkafka properties for kafka.tls: the mounted files' paths, and security.protocol unless set.
Takes (list scope properties) and sets them in properties.
*/}}
{{- define "statesync.kafkaTLSProperties" -}}
{{- $ := index . 0 }}{{ $props := index . 1 }}
{{- with $.Values.kafka.tls }}{{ if .existingSecret }}
{{- if .caKey }}{{ $_ := set $props "ssl.ca.location" (include "statesync.secretFile" (list $ "kafka-ca.crt")) }}{{ end }}
{{- if .clientCertificate }}
{{- $_ := set $props "ssl.certificate.location" (include "statesync.secretFile" (list $ "kafka-client.crt")) }}
{{- $_ := set $props "ssl.key.location" (include "statesync.secretFile" (list $ "kafka-client.key")) }}
{{- end }}
{{- if not (hasKey $props "security.protocol") }}
{{- $_ := set $props "security.protocol" (ternary "SASL_SSL" "SSL" (not (empty $.Values.kafka.sasl.username))) }}
{{- end }}
{{- end }}{{ end }}
{{- end }}

{{/* Checks of the secret settings that the schema cannot express (called by statesync.validate). */}}
{{- define "statesync.validateSecrets" -}}
{{- $v := .Values }}
{{- $mongo := list }}
{{- range $k := list "uri" "existingSecret" "uriFile" }}{{ if index $v.mongo $k }}{{ $mongo = append $mongo (printf "mongo.%s" $k) }}{{ end }}{{ end }}
{{- if gt (len $mongo) 1 }}
{{- fail (printf "statesync: set only one of mongo.uri, mongo.existingSecret and mongo.uriFile (got %s): each is the whole connection string" (join ", " $mongo)) }}
{{- end }}
{{- $sasl := list }}
{{- range $k := list "password" "existingSecret" "passwordFile" }}{{ if index $v.kafka.sasl $k }}{{ $sasl = append $sasl (printf "kafka.sasl.%s" $k) }}{{ end }}{{ end }}
{{- if gt (len $sasl) 1 }}
{{- fail (printf "statesync: set only one of kafka.sasl.password, kafka.sasl.existingSecret and kafka.sasl.passwordFile (got %s)" (join ", " $sasl)) }}
{{- end }}
{{- range $v.extraEnv }}
{{- if eq .name "STATESYNC_MONGO_URI" }}
{{- fail "statesync: extraEnv sets STATESYNC_MONGO_URI, but the chart passes the URI as the file STATESYNC_MONGO_URI_FILE and statesync refuses both: use mongo.existingSecret (mounted as a file) instead" }}
{{- end }}
{{- if and (eq .name "STATESYNC_KAFKA_SASL_PASSWORD") (gt (len $sasl) 0) }}
{{- fail (printf "statesync: extraEnv sets STATESYNC_KAFKA_SASL_PASSWORD and %s is set: statesync refuses both; keep %s" (first $sasl) (first $sasl)) }}
{{- end }}
{{- end }}
{{- $props := $v.kafka.properties | default dict }}
{{- with $v.kafka.tls }}
{{- if .existingSecret }}
{{- if not (or .caKey .clientCertificate) }}
{{- fail "statesync: kafka.tls.existingSecret is set but kafka.tls.caKey is empty and kafka.tls.clientCertificate is false: nothing to mount; set caKey (the CA's key in the Secret) or clientCertificate: true, or drop existingSecret to use the system's CAs" }}
{{- end }}
{{- range $k := list "ssl.ca.location" "ssl.ca.pem" "ssl.certificate.location" "ssl.certificate.pem" "ssl.key.location" "ssl.key.pem" "ssl.keystore.location" }}
{{- if hasKey $props $k }}
{{- fail (printf "statesync: kafka.properties sets %s and kafka.tls.existingSecret is set: the chart sets the ssl.*.location properties to the mounted files; remove %s from kafka.properties" $k $k) }}
{{- end }}
{{- end }}
{{- with (get $props "security.protocol") }}{{ if has (upper (toString .)) (list "PLAINTEXT" "SASL_PLAINTEXT") }}
{{- fail (printf "statesync: kafka.properties security.protocol is %s but kafka.tls.existingSecret is set: use SSL or SASL_SSL, or drop kafka.tls" .) }}
{{- end }}{{ end }}
{{- else if .clientCertificate }}
{{- fail "statesync: kafka.tls.clientCertificate is true but kafka.tls.existingSecret is empty: name the Secret that holds the client certificate and key" }}
{{- end }}
{{- end }}
{{- with $v.mongo.tls }}
{{- if .existingSecret }}
{{- if not (or .caKey .clientCertificate) }}
{{- fail "statesync: mongo.tls.existingSecret is set but mongo.tls.caKey is empty and mongo.tls.clientCertificate is false: nothing to mount; set caKey or clientCertificate: true, or drop existingSecret" }}
{{- end }}
{{- if $v.mongo.uri }}
{{- $want := list }}
{{- if .caKey }}{{ $want = append $want (printf "tlsCAFile=%s" (include "statesync.secretFile" (list $ "mongo-ca.crt"))) }}{{ end }}
{{- if .clientCertificate }}{{ $want = append $want (printf "tlsCertificateKeyFile=%s" (include "statesync.secretFile" (list $ "mongo-client.pem"))) }}{{ end }}
{{- range $want }}
{{- if not (or (contains . $v.mongo.uri) (contains (replace "/" "%2F" .) $v.mongo.uri)) }}
{{- fail (printf "statesync: mongo.tls mounts its files but mongo.uri does not name them: add %s to the URI's options (the driver reads only the files the URI names)" (join "&" $want)) }}
{{- end }}
{{- end }}
{{- end }}
{{- else if .clientCertificate }}
{{- fail "statesync: mongo.tls.clientCertificate is true but mongo.tls.existingSecret is empty: name the Secret that holds the client certificate and key" }}
{{- end }}
{{- end }}
{{- if and $v.mongo.oidcToken.enabled (not $v.mongo.oidcToken.audience) }}
{{- fail "statesync: mongo.oidcToken.enabled needs mongo.oidcToken.audience: the audience your MongoDB identity provider expects in the token" }}
{{- end }}
{{- end }}
