{{/*
statesync.container: the statesync container, as one item of a pod's containers list.
Takes the statesync chart's scope (see _helpers.tpl). Used by the standalone Deployment and by
statesync.sidecar.
*/}}
{{- define "statesync.container" -}}
{{- include "statesync.validate" . }}
{{- $sidecar := eq .Values.mode "sidecar" }}
{{- $port := include "statesync.httpPort" . -}}
- name: {{ ternary .Values.sidecar.containerName "statesync" $sidecar }}
  image: {{ include "statesync.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["run"]
  ports:
    - name: statesync-http
      containerPort: {{ $port }}
      protocol: TCP
  env:
    {{- include "statesync.env.merged" . | nindent 4 }}
  {{- with .Values.extraEnvFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if .Values.livenessProbe.enabled }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: statesync-http
    initialDelaySeconds: {{ .Values.livenessProbe.initialDelaySeconds | int64 }}
    periodSeconds: {{ .Values.livenessProbe.periodSeconds | int64 }}
    timeoutSeconds: {{ .Values.livenessProbe.timeoutSeconds | int64 }}
    failureThreshold: {{ .Values.livenessProbe.failureThreshold | int64 }}
  {{- end }}
  {{- if and .Values.readinessProbe.enabled (or (not $sidecar) .Values.sidecar.readinessProbe) }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: statesync-http
    initialDelaySeconds: {{ .Values.readinessProbe.initialDelaySeconds | int64 }}
    periodSeconds: {{ .Values.readinessProbe.periodSeconds | int64 }}
    timeoutSeconds: {{ .Values.readinessProbe.timeoutSeconds | int64 }}
    failureThreshold: {{ .Values.readinessProbe.failureThreshold | int64 }}
  {{- end }}
  {{- with .Values.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.containerSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- $mounts := concat (include "statesync.volumeMounts" . | fromYamlArray) (.Values.extraVolumeMounts | default list) }}
  {{- with $mounts }}
  volumeMounts:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
statesync.env: the chart's own environment, as a YAML list at column 0 (same scope as above).
*/}}
{{- define "statesync.env" -}}
{{- $port := include "statesync.httpPort" . }}
- name: STATESYNC_KAFKA_BROKERS
  value: {{ required "statesync: kafka.brokers is required" .Values.kafka.brokers | toJson }}
- name: STATESYNC_KAFKA_GROUP_ID
  value: {{ .Values.kafka.groupId | toJson }}
{{- $props := deepCopy (.Values.kafka.properties | default dict) }}
{{- with .Values.kafka.staticMembership }}{{ if .enabled }}
- name: STATESYNC_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- $_ := set $props "group.instance.id" ($props | dig "group.instance.id" "$(STATESYNC_POD_NAME)") }}
{{- $_ := set $props "session.timeout.ms" ($props | dig "session.timeout.ms" (mul (int64 .sessionTimeoutSeconds) 1000)) }}
{{- end }}{{ end }}
{{- include "statesync.kafkaTLSProperties" (list . $props) }}
{{- with $props }}
- name: STATESYNC_KAFKA_PROPERTIES
  value: {{ include "statesync.joinMap" (list . "=" ";") | toJson }}
{{- end }}
{{- with .Values.kafka.sasl.username }}
- name: STATESYNC_KAFKA_SASL_USERNAME
  value: {{ . | toJson }}
{{- end }}
{{- if .Values.kafka.sasl.passwordFile }}
- name: STATESYNC_KAFKA_SASL_PASSWORD_FILE
  value: {{ .Values.kafka.sasl.passwordFile | toJson }}
{{- else if or .Values.kafka.sasl.existingSecret .Values.kafka.sasl.password }}
- name: STATESYNC_KAFKA_SASL_PASSWORD_FILE
  value: {{ include "statesync.secretFile" (list . "kafka-sasl-password") | toJson }}
{{- end }}
- name: STATESYNC_TOPICS
  value: {{ .Values.kafka.topics | toJson }}
- name: STATESYNC_TOPIC_REFRESH_INTERVAL
  value: {{ .Values.kafka.topicRefreshInterval | toJson }}
- name: STATESYNC_DLT_TOPIC
  value: {{ .Values.kafka.dltTopic | toJson }}
- name: STATESYNC_MONGO_URI_FILE
  value: {{ .Values.mongo.uriFile | default (include "statesync.secretFile" (list . "mongo-uri")) | toJson }}
- name: STATESYNC_MONGO_DATABASE
  value: {{ required "statesync: mongo.database is required" .Values.mongo.database | toJson }}
{{- with .Values.mongo.collections }}
- name: STATESYNC_COLLECTIONS
  value: {{ include "statesync.joinMap" (list . "=" ",") | toJson }}
{{- end }}
- name: STATESYNC_MONGO_WRITE_CONCERN
  value: {{ include "statesync.scalar" .Values.mongo.writeConcern | toJson }}
- name: STATESYNC_MONGO_TIMEOUT
  value: {{ .Values.mongo.timeout | toJson }}
- name: STATESYNC_MONGO_MAX_BULK_OPS
  value: {{ .Values.mongo.maxBulkOps | int64 | toString | toJson }}
- name: STATESYNC_MONGO_BULK_PARALLEL
  value: {{ .Values.mongo.bulkParallel | int64 | toString | toJson }}
- name: STATESYNC_BATCH_MAX_DOCS
  value: {{ .Values.batch.maxDocs | int64 | toString | toJson }}
- name: STATESYNC_BATCH_MAX_BYTES
  value: {{ .Values.batch.maxBytes | int64 | toString | toJson }}
- name: STATESYNC_BATCH_MAX_WAIT
  value: {{ .Values.batch.maxWait | toJson }}
- name: STATESYNC_WRITE_CONCURRENCY
  value: {{ .Values.writeConcurrency | int64 | toString | toJson }}
- name: STATESYNC_RETRY_MAX_BACKOFF
  value: {{ .Values.retryMaxBackoff | toJson }}
- name: STATESYNC_UNWRITABLE_AFTER
  value: {{ .Values.unwritableAfter | int64 | toString | toJson }}
- name: STATESYNC_SYNC_METADATA
  value: {{ .Values.sync.metadata | toString | toJson }}
- name: STATESYNC_SYNC_FIELD
  value: {{ .Values.sync.field | toJson }}
- name: STATESYNC_STALE_GUARD
  value: {{ .Values.sync.staleGuard | toString | toJson }}
- name: STATESYNC_LOG_LEVEL
  value: {{ .Values.log.level | toJson }}
- name: STATESYNC_LOG_FORMAT
  value: {{ .Values.log.format | toJson }}
- name: STATESYNC_HTTP_ADDR
  value: {{ printf ":%s" $port | toJson }}
- name: STATESYNC_SHUTDOWN_GRACE
  value: {{ printf "%ds" (int64 .Values.shutdownGraceSeconds) | toJson }}
- name: STATESYNC_STUCK_AFTER
  value: {{ .Values.stuckAfter | toJson }}
{{- with include "statesync.goMemLimit" . }}
- name: GOMEMLIMIT
  value: {{ . | toJson }}
{{- end }}
{{- end }}

{{/*
statesync.env.merged: the chart's environment with extraEnv merged in by name: an entry named like
one of the chart's replaces it where it stands (so $(VAR) references keep their order), the others
follow in their own order; of two extraEnv entries with one name the last wins. Never two entries
of one name (the API server keeps both and the kubelet applies the last, silently).
*/}}
{{- define "statesync.env.merged" -}}
{{- $extra := dict }}
{{- range .Values.extraEnv }}{{ $_ := set $extra .name . }}{{ end }}
{{- $out := list }}
{{- range (include "statesync.env" . | fromYamlArray) }}
{{- if hasKey $extra .name }}
{{- $out = append $out (get $extra .name) }}{{ $_ := unset $extra .name }}
{{- else }}
{{- $out = append $out . }}
{{- end }}
{{- end }}
{{- range .Values.extraEnv }}
{{- if hasKey $extra .name }}{{ $out = append $out (get $extra .name) }}{{ $_ := unset $extra .name }}{{ end }}
{{- end }}
{{- toYaml $out }}
{{- end }}
