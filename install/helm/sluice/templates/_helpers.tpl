{{- define "sluice.labels" -}}
app.kubernetes.io/name: sluice
app.kubernetes.io/part-of: sluice
{{- end }}
