{{/*
statesync.sidecar — the statesync container for a service chart's own pod.

The service chart declares this chart as a dependency (set statesync.mode: sidecar in its values)
and includes the container in its pod spec's containers list:

    containers:
      - name: app
        ...
      {{- include "statesync.sidecar" . | nindent 8 }}

Pass the service chart's root context (.). When the dependency has an alias, pass
(dict "root" . "subchart" "<alias>"). The container is built from the subchart's own values,
chart metadata and release (.Subcharts.<name>), so it references exactly the Secret that the
subchart renders.

Companions for the same pod spec:
    terminationGracePeriodSeconds: {{ include "statesync.sidecar.terminationGracePeriodSeconds" . }}
    metadata.labels: {{- include "statesync.sidecar.podLabels" . | nindent 8 }}
    metadata.annotations: {{- include "statesync.sidecar.podAnnotations" . | nindent 8 }}
      (a checksum of the statesync Secret: a changed mongo.uri or SASL password rolls the pods)
    spec.volumes: {{- include "statesync.sidecar.volumes" . | nindent 8 }}
      (required: the secrets, certificates and token statesync reads as files; may render
      nothing. The pod needs a securityContext.fsGroup, any group: the files are mode 0440)
*/}}
{{- define "statesync.sidecar.scope" -}}
{{- /* Prints nothing; fails unless the argument leads to a statesync subchart in sidecar mode. */ -}}
{{- $root := . }}{{ $name := "statesync" }}
{{- if hasKey . "root" }}{{ $root = .root }}{{ $name = .subchart | default "statesync" }}{{ end }}
{{- $scope := index $root.Subcharts $name }}
{{- if not $scope }}
{{- fail (printf "statesync.sidecar: no subchart named %q; declare statesync as a dependency, or pass (dict \"root\" . \"subchart\" \"<alias>\")" $name) }}
{{- end }}
{{- if ne $scope.Values.mode "sidecar" }}
{{- fail (printf "statesync.sidecar: set %s.mode: sidecar in the service chart's values, or the subchart also renders its own Deployment" $name) }}
{{- end }}
{{- end }}

{{- define "statesync.sidecar" -}}
{{- include "statesync.sidecar.scope" . }}
{{- $root := . }}{{ $name := "statesync" }}
{{- if hasKey . "root" }}{{ $root = .root }}{{ $name = .subchart | default "statesync" }}{{ end }}
{{- include "statesync.container" (index $root.Subcharts $name) }}
{{- end }}

{{- define "statesync.sidecar.terminationGracePeriodSeconds" -}}
{{- include "statesync.sidecar.scope" . }}
{{- $root := . }}{{ $name := "statesync" }}
{{- if hasKey . "root" }}{{ $root = .root }}{{ $name = .subchart | default "statesync" }}{{ end }}
{{- include "statesync.terminationGracePeriodSeconds" (index $root.Subcharts $name) }}
{{- end }}

{{- define "statesync.sidecar.podLabels" -}}
{{- include "statesync.sidecar.scope" . }}
{{- $root := . }}{{ $name := "statesync" }}
{{- if hasKey . "root" }}{{ $root = .root }}{{ $name = .subchart | default "statesync" }}{{ end -}}
statesync/sidecar: {{ include "statesync.fullname" (index $root.Subcharts $name) | quote }}
{{- end }}

{{- define "statesync.sidecar.podAnnotations" -}}
{{- include "statesync.sidecar.scope" . }}
{{- $root := . }}{{ $name := "statesync" }}
{{- if hasKey . "root" }}{{ $root = .root }}{{ $name = .subchart | default "statesync" }}{{ end -}}
{{- include "statesync.podAnnotations" (index $root.Subcharts $name) }}
{{- end }}

{{- define "statesync.sidecar.volumes" -}}
{{- include "statesync.sidecar.scope" . }}
{{- $root := . }}{{ $name := "statesync" }}
{{- if hasKey . "root" }}{{ $root = .root }}{{ $name = .subchart | default "statesync" }}{{ end -}}
{{- include "statesync.volumes" (index $root.Subcharts $name) | trim }}
{{- end }}
