{{/* Labels every object of this chart carries. */}}
{{- define "plait.labels" -}}
app.kubernetes.io/part-of: plait
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* The control plane's selector labels (Istio's istiod uses app: istiod, istio: pilot). */}}
{{- define "plait.selector" -}}
app: plaitd
istio: pilot
{{- end }}

{{- define "plait.image" -}}
{{ .root.Values.global.hub }}/{{ .image }}:{{ .root.Values.global.tag }}
{{- end }}

{{- define "plait.rootNamespace" -}}
{{ .Values.meshConfig.rootNamespace | default .Release.Namespace }}
{{- end }}
