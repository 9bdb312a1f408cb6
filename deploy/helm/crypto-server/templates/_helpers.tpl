{{/* Names and labels shared by every object of the release. */}}
{{- define "crypto-server.fullname" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "crypto-server.commonLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The server's pods. The migration Job's pods carry component "migration", so the Service, the PDB and the NetworkPolicy never select them. */}}
{{- define "crypto-server.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "crypto-server.labels" -}}
{{ include "crypto-server.commonLabels" . }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "crypto-server.image" -}}
{{ printf "%s:%s" .Values.image.repository .Values.image.tag | quote }}
{{- end -}}

{{/*
The environment of the server and of the migration Job: the chart's own settings, the
non-secret settings from values, the *_FILE settings of mounted Secret keys, and secretKeyRefs.
*/}}
{{- define "crypto-server.env" -}}
- name: CS_HOST
  value: "0.0.0.0"
- name: CS_PORT
  value: "8080"
- name: CS_DATA_DIR
  value: /var/lib/crypto-server
- name: CS_WORKERS
  value: {{ .Values.workers | quote }}
- name: CS_MIGRATE_ON_START
  value: "false"
- name: CS_SHUTDOWN_TIMEOUT_MS
  value: {{ mul .Values.shutdown.timeoutSeconds 1000 | quote }}
{{- if .Values.tls.enabled }}
- name: CS_TLS_CERT_FILE
  value: /etc/crypto-server/tls/tls.crt
- name: CS_TLS_KEY_FILE
  value: /etc/crypto-server/tls/tls.key
{{- end }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- range $i, $f := .Values.secretFiles }}
- name: {{ $f.setting }}
  value: {{ printf "/etc/crypto-server/secrets/%d/%s" $i $f.key | quote }}
{{- end }}
{{- range .Values.secretEnv }}
- name: {{ .setting }}
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .key }}
{{- end }}
{{- end -}}

{{/* Secret files (read-only), TLS, and emptyDirs for the only writable paths. */}}
{{- define "crypto-server.volumeMounts" -}}
- name: data
  mountPath: /var/lib/crypto-server
- name: tmp
  mountPath: /tmp
{{- range $i, $f := .Values.secretFiles }}
- name: {{ printf "secret-%d" $i }}
  mountPath: {{ printf "/etc/crypto-server/secrets/%d" $i | quote }}
  readOnly: true
{{- end }}
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: /etc/crypto-server/tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "crypto-server.volumes" -}}
- name: data
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- range $i, $f := .Values.secretFiles }}
- name: {{ printf "secret-%d" $i }}
  secret:
    secretName: {{ $f.existingSecret }}
    defaultMode: 288 # 0440: the pod's group (fsGroup) reads it
    items:
      - key: {{ $f.key | quote }}
        path: {{ $f.key | quote }}
{{- end }}
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ .Values.tls.existingSecret }}
    defaultMode: 288 # 0440: the pod's group (fsGroup) reads it
{{- end }}
{{- end -}}

{{- define "crypto-server.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "crypto-server.containerSecurityContext" -}}
runAsNonRoot: true
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
