{{/*
Every helper takes the statesync chart's own scope (.Values, .Chart, .Release): the chart's root
context in its own templates, or .Subcharts.statesync when a service chart renders the sidecar.
So names, labels and the image agree whichever chart renders them.
*/}}

{{- define "statesync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "statesync.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "statesync.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "statesync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "statesync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "statesync.labels" -}}
helm.sh/chart: {{ include "statesync.chart" . }}
{{ include "statesync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: statesync
app.kubernetes.io/part-of: codr
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "statesync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "statesync.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "statesync.image" -}}
{{- $repo := .Values.image.repository }}
{{- if .Values.image.registry }}
{{- $repo = printf "%s/%s" (trimSuffix "/" .Values.image.registry) $repo }}
{{- end }}
{{- $ref := printf "%s:%s" $repo (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- if .Values.image.digest }}
{{- $ref = printf "%s@%s" $ref .Values.image.digest }}
{{- end }}
{{- $ref }}
{{- end }}

{{/* The chart's own Secret: holds whichever of the MongoDB URI and SASL password came as values. */}}
{{- define "statesync.secretName" -}}
{{- include "statesync.fullname" . }}
{{- end }}

{{- define "statesync.createSecret" -}}
{{- if or (and .Values.mongo.uri (not .Values.mongo.existingSecret)) (and .Values.kafka.sasl.password (not .Values.kafka.sasl.existingSecret)) }}true{{ end }}
{{- end }}

{{/* HTTP port: the sidecar keeps clear of the service's own ports. */}}
{{- define "statesync.httpPort" -}}
{{- if eq .Values.mode "sidecar" }}{{ .Values.sidecar.httpPort | int64 }}{{ else }}{{ .Values.http.port | int64 }}{{ end }}
{{- end }}

{{/*
A scalar as the binary should read it. Values files reach templates through JSON, so every number
is a float64 that would print as 8.388608e+06: print whole numbers as integers.
*/}}
{{- define "statesync.scalar" -}}
{{- if kindIs "float64" . }}
{{- if eq (float64 (int64 .)) . }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- else }}
{{- . }}
{{- end }}
{{- end }}

{{/* A map rendered as key<kv>value<sep>key<kv>value in key order. Takes (list map kv sep). */}}
{{- define "statesync.joinMap" -}}
{{- $m := index . 0 }}{{ $kv := index . 1 }}{{ $sep := index . 2 }}
{{- $pairs := list }}
{{- range $k := keys $m | sortAlpha }}
{{- $pairs = append $pairs (printf "%s%s%s" $k $kv (include "statesync.scalar" (index $m $k))) }}
{{- end }}
{{- join $sep $pairs }}
{{- end }}

{{/* Checks that cannot be said in values.schema.json, with messages that say what to change. */}}
{{- define "statesync.validate" -}}
{{- include "statesync.validateSecrets" . }}
{{- if not (or .Values.mongo.uri .Values.mongo.existingSecret .Values.mongo.uriFile) }}
{{- fail "statesync: set mongo.uri, mongo.existingSecret or mongo.uriFile (the MongoDB connection string is required)" }}
{{- end }}
{{- if and .Values.kafka.sasl.username (not (or .Values.kafka.sasl.password .Values.kafka.sasl.existingSecret .Values.kafka.sasl.passwordFile)) }}
{{- fail "statesync: kafka.sasl.username is set: also set kafka.sasl.password, kafka.sasl.existingSecret or kafka.sasl.passwordFile" }}
{{- end }}
{{- if and .Values.terminationGracePeriodSeconds (le (int64 .Values.terminationGracePeriodSeconds) (int64 .Values.shutdownGraceSeconds)) }}
{{- fail (printf "statesync: terminationGracePeriodSeconds (%d) must exceed shutdownGraceSeconds (%d), or the kubelet kills statesync before it has committed" (int64 .Values.terminationGracePeriodSeconds) (int64 .Values.shutdownGraceSeconds)) }}
{{- end }}
{{- end }}

{{/* Seconds the pod should be given to stop: more than statesync's own shutdown grace. */}}
{{- define "statesync.terminationGracePeriodSeconds" -}}
{{- if .Values.terminationGracePeriodSeconds }}{{ .Values.terminationGracePeriodSeconds | int64 }}{{ else }}{{ add (int64 .Values.shutdownGraceSeconds) 15 }}{{ end }}
{{- end }}

{{/* Label matchers that scope the alerts to this release. */}}
{{- define "statesync.alertSelector" -}}
{{- if .Values.prometheusRule.selector }}
{{- .Values.prometheusRule.selector }}
{{- else if and (ne .Values.mode "sidecar") .Values.metrics.serviceMonitor.enabled }}
{{- printf "namespace=%q,job=%q" .Release.Namespace (include "statesync.fullname" .) }}
{{- else if and (eq .Values.mode "sidecar") .Values.metrics.podMonitor.enabled }}
{{- printf "namespace=%q,job=%q" .Release.Namespace (printf "%s/%s" .Release.Namespace (include "statesync.fullname" .)) }}
{{- else }}
{{- printf "namespace=%q" .Release.Namespace }}
{{- end }}
{{- end }}

{{/*
GOMEMLIMIT: goMemLimitRatio of resources.limits.memory, in MiB ("192MiB" for 256Mi and 0.75);
empty without a memory limit or with a ratio of 0. A ratio, not the downward API: a
resourceFieldRef hands over the whole limit (its divisor can only be 1, 1Ki, 1Mi, ...; env
expansion does no arithmetic), and a Go limit equal to the container's leaves nothing for the C
heap of librdkafka, which the Go runtime does not count.
*/}}
{{- define "statesync.goMemLimit" -}}
{{- $limit := "" }}
{{- with .Values.resources }}{{ with .limits }}{{ with .memory }}{{ $limit = include "statesync.scalar" . }}{{ end }}{{ end }}{{ end }}
{{- $ratio := float64 (.Values.goMemLimitRatio | default 0) }}
{{- if and $limit (gt $ratio 0.0) }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $limit }}
{{- $unit := trimPrefix $number $limit }}
{{- $scale := dict "" 1.0 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 }}
{{- if or (not $number) (not (hasKey $scale $unit)) }}
{{- fail (printf "statesync: resources.limits.memory %q: use a quantity such as 256Mi or 1Gi (or set goMemLimitRatio: 0)" $limit) }}
{{- end }}
{{- $mib := floor (divf (mulf (mulf (float64 $number) (get $scale $unit)) $ratio) 1048576) | int64 }}
{{- if lt $mib 1 }}{{ fail (printf "statesync: resources.limits.memory %q is too small for a GOMEMLIMIT" $limit) }}{{ end }}
{{- printf "%dMiB" $mib }}
{{- end }}
{{- end }}

{{/*
Pod annotations that roll the pods when something they read by reference changes: the chart's
own Secret (mongo.uri, kafka.sasl.password given as values). Everything else statesync reads is
in the container spec itself, which rolls the pods when it changes. Same scope as above.
*/}}
{{- define "statesync.podAnnotations" -}}
{{- if include "statesync.createSecret" . -}}
checksum/statesync-secret: {{ include "statesync.secretData" . | sha256sum }}
{{- end }}
{{- end }}

{{/* The data of the chart's Secret (secret.yaml and the checksum). */}}
{{- define "statesync.secretData" -}}
{{- if and .Values.mongo.uri (not .Values.mongo.existingSecret) }}
mongo-uri: {{ .Values.mongo.uri | b64enc | quote }}
{{- end }}
{{- if and .Values.kafka.sasl.password (not .Values.kafka.sasl.existingSecret) }}
sasl-password: {{ .Values.kafka.sasl.password | b64enc | quote }}
{{- end }}
{{- end }}
