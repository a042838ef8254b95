{{/* The release's base name: the release name when it already says "bmt", else <release>-bmt. */}}
{{- define "bmt.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "bmt.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "bmt.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object; `component` is added by the caller's selector labels. */}}
{{- define "bmt.labels" -}}
helm.sh/chart: {{ include "bmt.chart" . }}
app.kubernetes.io/name: {{ include "bmt.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: bmt
{{- end -}}

{{/* Selector labels of one component: (list $ "user"). */}}
{{- define "bmt.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "bmt.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "bmt.componentLabels" -}}
{{ include "bmt.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "bmt.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* In-cluster base URL of a service: (list $ "user"). */}}
{{- define "bmt.serviceUrl" -}}
{{- $root := index . 0 -}}{{- $name := index . 1 -}}
{{- printf "http://%s-%s:%v" (include "bmt.fullname" $root) $name (index $root.Values.services $name).port -}}
{{- end -}}

{{- define "bmt.publicUrl" -}}
{{- if .Values.publicUrl -}}
{{- .Values.publicUrl -}}
{{- else if .Values.ingress.enabled -}}
{{- printf "%s://%s" (ternary "https" "http" .Values.ingress.tls.enabled) .Values.ingress.host -}}
{{- else -}}
{{- include "bmt.serviceUrl" (list . "gateway") -}}
{{- end -}}
{{- end -}}

{{- define "bmt.mediaBaseUrl" -}}
{{- if .Values.aws.mediaBaseUrl -}}
{{- .Values.aws.mediaBaseUrl -}}
{{- else if .Values.aws.endpoint -}}
{{- .Values.aws.endpoint -}}
{{- else -}}
{{- printf "https://s3.%s.amazonaws.com" .Values.aws.region -}}
{{- end -}}
{{- end -}}

{{/* Secret names: the user's existing one, or the chart's. */}}
{{- define "bmt.postgresSecret" -}}
{{- .Values.postgres.existingSecret | default (printf "%s-postgres" (include "bmt.fullname" .)) -}}
{{- end -}}
{{- define "bmt.awsSecret" -}}
{{- .Values.aws.existingSecret | default (printf "%s-aws" (include "bmt.fullname" .)) -}}
{{- end -}}
{{- define "bmt.authSecret" -}}
{{- .Values.auth.existingSecret | default (printf "%s-auth" (include "bmt.fullname" .)) -}}
{{- end -}}
{{- define "bmt.paymentsSecret" -}}
{{- .Values.payments.existingSecret | default (printf "%s-payments" (include "bmt.fullname" .)) -}}
{{- end -}}

{{/*
One service's settings: serviceDefaults overlaid with services.<name>, key by key (hpa and pdb
field by field). Written by hand because sprig's merge functions ignore false and 0 in the
overriding map, so `hpa: {enabled: false}` would not win. Returns YAML: (list $ "user").
*/}}
{{- define "bmt.serviceConfig" -}}
{{- $root := index . 0 -}}{{- $name := index . 1 -}}
{{- $defaults := $root.Values.serviceDefaults -}}
{{- $own := index $root.Values.services $name -}}
{{- $out := dict "name" $name -}}
{{- range $key, $value := $defaults -}}
{{- if and (has $key (list "hpa" "pdb")) (hasKey $own $key) -}}
{{- $merged := dict -}}
{{- range $k, $v := $value }}{{ $_ := set $merged $k $v }}{{ end -}}
{{- range $k, $v := (index $own $key) }}{{ $_ := set $merged $k $v }}{{ end -}}
{{- $_ := set $out $key $merged -}}
{{- else if hasKey $own $key -}}
{{- $_ := set $out $key (index $own $key) -}}
{{- else -}}
{{- $_ := set $out $key $value -}}
{{- end -}}
{{- end -}}
{{- range $key, $value := $own -}}
{{- if not (hasKey $defaults $key) }}{{ $_ := set $out $key $value }}{{ end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* The database URL of one database, its password taken from $(BMT_POSTGRES_PASSWORD). */}}
{{- define "bmt.databaseUrl" -}}
{{- $root := index . 0 -}}{{- $database := index . 1 -}}
{{- $pg := $root.Values.postgres -}}
{{- printf "postgresql://%s:$(BMT_POSTGRES_PASSWORD)@%s:%v/%s" $pg.user $pg.host $pg.port $database -}}
{{- if $pg.params }}?{{ $pg.params }}{{ end -}}
{{- end -}}

{{- define "bmt.postgresPasswordEnv" -}}
- name: BMT_POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "bmt.postgresSecret" . }}
      key: postgres-password
{{- end -}}

{{- define "bmt.awsEnv" -}}
- name: BMT_AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "bmt.awsSecret" . }}
      key: aws-access-key-id
- name: BMT_AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "bmt.awsSecret" . }}
      key: aws-secret-access-key
{{- end -}}

{{/* The value of a generated secret key: the given one, the one already in the cluster, or new. */}}
{{- define "bmt.secretValue" -}}
{{- $root := index . 0 -}}{{- $secret := index . 1 -}}{{- $key := index . 2 -}}
{{- $given := index . 3 -}}{{- $make := index . 4 -}}
{{- if $given -}}
{{- $given | b64enc -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" $root.Release.Namespace $secret -}}
{{- if and $existing (hasKey ($existing.data | default dict) $key) -}}
{{- index $existing.data $key -}}
{{- else if eq $make "ed25519" -}}
{{- genPrivateKey "ed25519" | b64enc -}}
{{- else -}}
{{- randAlphaNum 43 | b64enc -}}
{{- end -}}
{{- end -}}
{{- end -}}
