{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "certa.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name prefix of every object: RELEASE-NAME, or RELEASE when it already contains the name. */}}
{{- define "certa.fullname" -}}
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

{{/* Name of the Triton objects. */}}
{{- define "certa.triton.fullname" -}}
{{- printf "%s-triton" (include "certa.fullname" . | trunc 56 | trimSuffix "-") }}
{{- end }}

{{/* Name of the controller's headless Service. */}}
{{- define "certa.headless.fullname" -}}
{{- printf "%s-headless" (include "certa.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{/* Name of the bundled Redis objects. */}}
{{- define "certa.redis.fullname" -}}
{{- printf "%s-redis" (include "certa.fullname" . | trunc 57 | trimSuffix "-") }}
{{- end }}

{{- define "certa.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels shared by every object (add the component with certa.componentLabels). */}}
{{- define "certa.labels" -}}
helm.sh/chart: {{ include "certa.chart" . }}
app.kubernetes.io/name: {{ include "certa.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: certa
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component: call with (dict "context" $ "component" "controller"). */}}
{{- define "certa.selectorLabels" -}}
app.kubernetes.io/name: {{ include "certa.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Full labels of one component's objects: call like certa.selectorLabels. */}}
{{- define "certa.componentLabels" -}}
{{ include "certa.labels" .context }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "certa.controller.selectorLabels" -}}
{{ include "certa.selectorLabels" (dict "context" . "component" "controller") }}
{{- end }}

{{- define "certa.controller.labels" -}}
{{ include "certa.componentLabels" (dict "context" . "component" "controller") }}
{{- end }}

{{- define "certa.triton.selectorLabels" -}}
{{ include "certa.selectorLabels" (dict "context" . "component" "triton") }}
{{- end }}

{{- define "certa.triton.labels" -}}
{{ include "certa.componentLabels" (dict "context" . "component" "triton") }}
{{- end }}

{{- define "certa.redis.selectorLabels" -}}
{{ include "certa.selectorLabels" (dict "context" . "component" "redis") }}
{{- end }}

{{- define "certa.redis.labels" -}}
{{ include "certa.componentLabels" (dict "context" . "component" "redis") }}
{{- end }}

{{- define "certa.serviceAccountName" -}}
{{- if .Values.controller.serviceAccount.create }}
{{- default (include "certa.fullname" .) .Values.controller.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.controller.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* An image reference: REPOSITORY@DIGEST when `digest` is set, else REPOSITORY:TAG (`tag` defaulting to
`default`). Call with (dict "image" IMAGE_VALUES "default" TAG). */}}
{{- define "certa.imageRef" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .default .image.tag) }}
{{- end }}
{{- end }}

{{- define "certa.controller.image" -}}
{{- include "certa.imageRef" (dict "image" .Values.controller.image "default" .Chart.AppVersion) }}
{{- end }}

{{- define "certa.redis.image" -}}
{{- include "certa.imageRef" (dict "image" .Values.redis.bundled.image "default" "") }}
{{- end }}

{{- define "certa.triton.image" -}}
{{- include "certa.imageRef" (dict "image" .Values.triton.image "default" "") }}
{{- end }}

{{/* Triton URL of the active Triton: the chart's Service, or triton.externalUrl (required then). */}}
{{- define "certa.triton.url" -}}
{{- if .Values.triton.enabled }}
{{- printf "triton://%s:%d" (include "certa.triton.fullname" .) (int .Values.triton.ports.grpc) }}
{{- else }}
{{- required "triton.externalUrl is required when triton.enabled is false (e.g. triton://triton.inference.svc:8001)" .Values.triton.externalUrl }}
{{- end }}
{{- end }}

{{/* TCP port of the active Triton's gRPC endpoint (8001 when externalUrl names none). */}}
{{- define "certa.triton.port" -}}
{{- if .Values.triton.enabled }}
{{- .Values.triton.ports.grpc }}
{{- else }}
{{- $host := (urlParse (include "certa.triton.url" .)).host }}
{{- if regexMatch ":[0-9]+$" $host }}
{{- regexFind "[0-9]+$" $host }}
{{- else }}
{{- 8001 }}
{{- end }}
{{- end }}
{{- end }}

{{/* CERTA_REDIS_URL: the bundled Redis's Service (database 0), or redis.external.url. */}}
{{- define "certa.redis.url" -}}
{{- if .Values.redis.bundled.enabled }}
{{- printf "redis://%s:%d/0" (include "certa.redis.fullname" .) (int .Values.redis.bundled.port) }}
{{- else }}
{{- .Values.redis.external.url }}
{{- end }}
{{- end }}

{{/* Secret holding the Redis password: the bundled Redis's (existing or generated), else
redis.external.existingSecret; empty when the external Redis needs no password. */}}
{{- define "certa.redis.passwordSecret" -}}
{{- $redis := .Values.redis }}
{{- if $redis.bundled.enabled }}
{{- default (include "certa.redis.fullname" .) $redis.bundled.auth.existingSecret }}
{{- else }}
{{- $redis.external.existingSecret }}
{{- end }}
{{- end }}

{{/* Key of the password in certa.redis.passwordSecret. */}}
{{- define "certa.redis.passwordKey" -}}
{{- ternary .Values.redis.bundled.auth.passwordKey .Values.redis.external.passwordKey .Values.redis.bundled.enabled }}
{{- end }}

{{/* TCP ports of the external Redis (JSON list): networkPolicy.egress.redis.ports, else the URL's port (6379
when it names none). */}}
{{- define "certa.redis.externalPorts" -}}
{{- $ports := .Values.networkPolicy.egress.redis.ports }}
{{- if not $ports }}
{{- $host := (urlParse .Values.redis.external.url).host }}
{{- $ports = list (ternary (regexFind "[0-9]+$" $host) "6379" (regexMatch ":[0-9]+$" $host) | int) }}
{{- end }}
{{- toJson $ports }}
{{- end }}

{{/* CERTA_BACKENDS: backendName=TRITON_URL[?backendOptions], then controller.config.extraBackends. */}}
{{- define "certa.backends" -}}
{{- $config := .Values.controller.config }}
{{- $url := include "certa.triton.url" . }}
{{- $options := list }}
{{- range $key, $value := $config.backendOptions }}
{{- $options = append $options (printf "%s=%s" $key (toString $value | urlquery)) }}
{{- end }}
{{- if $options }}
{{- $url = printf "%s%s%s" $url (ternary "&" "?" (contains "?" $url)) (join "&" $options) }}
{{- end }}
{{- $entries := list (printf "%s=%s" $config.backendName $url) }}
{{- range $config.extraBackends }}
{{- $backendUrl := .url }}
{{- $files := list }}
{{- if .apiKeySecret }}
{{- $files = append $files (printf "api_key_file=/etc/certa/backends/%s/api-key" .name) }}
{{- end }}
{{- if .headersSecret }}
{{- $files = append $files (printf "headers_file=/etc/certa/backends/%s/headers.json" .name) }}
{{- end }}
{{- if $files }}
{{- $backendUrl = printf "%s%s%s" $backendUrl (ternary "&" "?" (contains "?" $backendUrl)) (join "&" $files) }}
{{- end }}
{{- $entries = append $entries (printf "%s=%s" .name $backendUrl) }}
{{- end }}
{{- join "," $entries }}
{{- end }}

{{/* Names of every backend of CERTA_BACKENDS. */}}
{{- define "certa.backendNames" -}}
{{- $names := list .Values.controller.config.backendName }}
{{- range .Values.controller.config.extraBackends }}
{{- $names = append $names .name }}
{{- end }}
{{- toJson $names }}
{{- end }}

{{/*
Checks values.schema.json cannot express (and repeats the schema's combination checks, so that rendering with
--skip-schema-validation still refuses them). Rendered by validate.yaml.
*/}}
{{- define "certa.validate" -}}
{{- $v := .Values }}
{{- if and $v.autoscaling.enabled $v.keda.enabled }}
{{- fail "autoscaling.enabled and keda.enabled are mutually exclusive: enable at most one autoscaler for the controller" }}
{{- end }}
{{- if lt (int $v.controller.replicaCount) 1 }}
{{- fail (printf "controller.replicaCount must be at least 1, got %v" $v.controller.replicaCount) }}
{{- end }}
{{- if and (not $v.triton.enabled) (not $v.triton.externalUrl) }}
{{- fail "triton.externalUrl is required when triton.enabled is false (e.g. triton://triton.inference.svc:8001)" }}
{{- end }}
{{- $config := $v.controller.config }}
{{- $drain := float64 $config.drainTimeoutSeconds }}
{{- $preStop := float64 $v.controller.preStopSleepSeconds }}
{{- if le (float64 $v.controller.terminationGracePeriodSeconds) (addf $preStop $drain 5) }}
{{- fail (printf "controller.terminationGracePeriodSeconds (%v) must exceed controller.preStopSleepSeconds (%v) + controller.config.drainTimeoutSeconds (%v) + 5 s of server stop grace: Kubernetes kills the pod when it runs out" $v.controller.terminationGracePeriodSeconds $v.controller.preStopSleepSeconds $config.drainTimeoutSeconds) }}
{{- end }}
{{- if gt (int $config.defaultTokenBudget) (int $config.maxTokenBudget) }}
{{- fail (printf "controller.config.defaultTokenBudget (%v) must be <= controller.config.maxTokenBudget (%v)" $config.defaultTokenBudget $config.maxTokenBudget) }}
{{- end }}
{{- if gt (float64 $config.defaultDeadlineSeconds) (float64 $config.maxDeadlineSeconds) }}
{{- fail (printf "controller.config.defaultDeadlineSeconds (%v) must be <= controller.config.maxDeadlineSeconds (%v)" $config.defaultDeadlineSeconds $config.maxDeadlineSeconds) }}
{{- end }}
{{- $names := include "certa.backendNames" . | fromJsonArray }}
{{- if ne (len $names) (len (uniq $names)) }}
{{- fail (printf "controller.config.extraBackends: backend names must be unique and differ from controller.config.backendName, got %v" $names) }}
{{- end }}
{{- if and $config.defaultBackend (not (has $config.defaultBackend $names)) }}
{{- fail (printf "controller.config.defaultBackend %q is not one of the backends %v" $config.defaultBackend $names) }}
{{- end }}
{{- if and $v.autoscaling.enabled (lt (int $v.autoscaling.maxReplicas) (int $v.autoscaling.minReplicas)) }}
{{- fail "autoscaling.maxReplicas must be >= autoscaling.minReplicas" }}
{{- end }}
{{- if and $v.keda.enabled (lt (int $v.keda.maxReplicaCount) (int $v.keda.minReplicaCount)) }}
{{- fail "keda.maxReplicaCount must be >= keda.minReplicaCount" }}
{{- end }}
{{- if and $v.triton.enabled $v.triton.autoscaling.enabled (lt (int $v.triton.autoscaling.maxReplicas) (int $v.triton.autoscaling.minReplicas)) }}
{{- fail "triton.autoscaling.maxReplicas must be >= triton.autoscaling.minReplicas" }}
{{- end }}
{{- include "certa.validateRedis" . }}
{{- include "certa.validateSecurity" . }}
{{- include "certa.validateOperations" . }}
{{- end }}

{{/* Load spreading, routes, alerts and dashboards: combinations that cannot work. Part of certa.validate. */}}
{{- define "certa.validateOperations" -}}
{{- $v := .Values }}
{{- $controller := $v.controller }}
{{- $config := $controller.config }}
{{- $grace := $config.grpcMaxConnectionAgeGraceSeconds }}
{{- if and (ne (toString $grace) "") (lt (float64 $grace) (float64 $config.maxDeadlineSeconds)) }}
{{- fail (printf "controller.config.grpcMaxConnectionAgeGraceSeconds (%v) must be >= controller.config.maxDeadlineSeconds (%v): a call allowed to run that long would be cut when its connection ages out (leave it empty to follow maxDeadlineSeconds)" $grace $config.maxDeadlineSeconds) }}
{{- end }}
{{- $httpPort := int $controller.httpPort }}
{{- if $httpPort }}
{{- $taken := dict (toString $controller.port) "controller.port" (toString (int $v.metrics.port)) "metrics.port" }}
{{- if $v.tls.enabled }}
{{- $_ := set $taken (toString (int $controller.healthPort)) "controller.healthPort" }}
{{- end }}
{{- with index $taken (toString $httpPort) }}
{{- fail (printf "controller.httpPort (%d) must differ from %s: each endpoint needs its own port" $httpPort .) }}
{{- end }}
{{- end }}
{{- $routes := $v.gateway }}
{{- if $routes.grpcRoute.enabled }}
{{- if not $routes.grpcRoute.parentRefs }}
{{- fail "gateway.grpcRoute.enabled needs gateway.grpcRoute.parentRefs (the Gateway(s) the GRPCRoute attaches to)" }}
{{- end }}
{{- end }}
{{- if $routes.httpRoute.enabled }}
{{- if not $httpPort }}
{{- fail "gateway.httpRoute.enabled needs controller.httpPort (the controller's OpenAI-compatible HTTP endpoint); it is 0, so there is nothing to route to" }}
{{- end }}
{{- if not $routes.httpRoute.parentRefs }}
{{- fail "gateway.httpRoute.enabled needs gateway.httpRoute.parentRefs (the Gateway(s) the HTTPRoute attaches to)" }}
{{- end }}
{{- end }}
{{- if and (or $routes.grpcRoute.enabled $routes.httpRoute.enabled) (ne (include "certa.gatewayApi" .) "true") }}
{{- fail "gateway.grpcRoute.enabled / gateway.httpRoute.enabled need the Gateway API: the cluster does not serve gateway.networking.k8s.io/v1 (install its CRDs first; `helm template` needs --api-versions gateway.networking.k8s.io/v1)" }}
{{- end }}
{{- if and $v.prometheusRule.enabled (not (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")) }}
{{- fail "prometheusRule.enabled needs the Prometheus Operator: the cluster does not serve monitoring.coreos.com/v1 (`helm template` needs --api-versions monitoring.coreos.com/v1)" }}
{{- end }}
{{- end }}

{{/* The state store: exactly one Redis, and TLS / cluster settings that can work. Part of certa.validate. */}}
{{- define "certa.validateRedis" -}}
{{- $external := .Values.redis.external }}
{{- if .Values.redis.bundled.enabled }}
{{- if $external.url }}
{{- fail "redis.bundled.enabled and redis.external.url are mutually exclusive: set redis.bundled.enabled=false to use the external Redis, or leave redis.external.url empty" }}
{{- end }}
{{- if or $external.existingSecret $external.username $external.cluster $external.tls.enabled }}
{{- fail "redis.external.existingSecret, .username, .cluster and .tls.enabled apply only to an external Redis (redis.bundled.enabled=false and redis.external.url set); the bundled Redis takes redis.bundled.auth" }}
{{- end }}
{{- else if not $external.url }}
{{- fail "no Redis configured: the controller keeps its state in Redis; set redis.bundled.enabled=true (a Redis in this release) or redis.external.url (e.g. redis://redis.data.svc:6379/0)" }}
{{- else }}
{{- if and $external.cluster (hasPrefix "unix://" $external.url) }}
{{- fail "redis.external.cluster needs a TCP redis:// or rediss:// redis.external.url, not a unix:// socket" }}
{{- end }}
{{- $tls := $external.tls }}
{{- if $tls.enabled }}
{{- if not (hasPrefix "rediss://" $external.url) }}
{{- fail (printf "redis.external.tls.enabled needs a rediss:// redis.external.url, got %q" $external.url) }}
{{- end }}
{{- if not $tls.existingSecret }}
{{- fail "redis.external.tls.enabled needs redis.external.tls.existingSecret (the Secret holding the CA and/or client certificate)" }}
{{- end }}
{{- if not (or $tls.caKey $tls.certKey) }}
{{- fail "redis.external.tls.enabled needs redis.external.tls.caKey or redis.external.tls.certKey: nothing to mount from the Secret otherwise" }}
{{- end }}
{{- end }}
{{- if ne (empty $tls.certKey) (empty $tls.keyKey) }}
{{- fail "redis.external.tls.certKey and redis.external.tls.keyKey go together: a client certificate needs its key" }}
{{- end }}
{{- end }}
{{- $config := .Values.controller.config }}
{{- if lt (int64 $config.resultTtlSeconds) (int64 $config.stateTtlSeconds) }}
{{- fail (printf "controller.config.resultTtlSeconds (%v) must be >= controller.config.stateTtlSeconds (%v): a final result outlives the request's state" $config.resultTtlSeconds $config.stateTtlSeconds) }}
{{- end }}
{{- if lt (float64 $config.stateTtlSeconds) (float64 $config.leaseSeconds) }}
{{- fail (printf "controller.config.stateTtlSeconds (%v) must be >= controller.config.leaseSeconds (%v): a running request's state outlives its lease" $config.stateTtlSeconds $config.leaseSeconds) }}
{{- end }}
{{- end }}

{{/* "true" when the controller serves Prometheus metrics: metrics.enabled, or something that needs them (a
ServiceMonitor scraping them, the PrometheusRule, the HPA's in-flight metric, KEDA's Prometheus trigger). */}}
{{- define "certa.metricsEnabled" -}}
{{- $v := .Values }}
{{- $hpa := and $v.autoscaling.enabled $v.autoscaling.requestsInFlight.enabled }}
{{- $keda := and $v.keda.enabled $v.keda.prometheus.enabled }}
{{- or $v.metrics.enabled $v.serviceMonitor.enabled $v.prometheusRule.enabled $hpa $keda -}}
{{- end }}

{{/* PromQL label matchers of the release's controller pods, by the `namespace` and `pod` target labels (which a
ServiceMonitor, a PodMonitor and the usual pod-annotation scrape jobs all set): Deployment pods are named
FULLNAME-HASH-SUFFIX (a ReplicaSet hash of up to 10 characters, a suffix of 5), which Triton's
(FULLNAME-triton-HASH-SUFFIX), Redis's (FULLNAME-redis-0) and other releases' are not. */}}
{{- define "certa.podSelector" -}}
{{- printf "namespace=%q, pod=~%q" .Release.Namespace (printf "%s-[a-z0-9]{1,10}-[a-z0-9]{5}" (include "certa.fullname" .)) }}
{{- end }}

{{/* Whether the cluster serves the Gateway API's v1 routes. */}}
{{- define "certa.gatewayApi" -}}
{{- .Capabilities.APIVersions.Has "gateway.networking.k8s.io/v1" }}
{{- end }}

{{/* OTEL_RESOURCE_ATTRIBUTES: namespace and pod (from the POD_NAME variable), then otel.resourceAttributes. */}}
{{- define "certa.otelResourceAttributes" -}}
{{- $pairs := list (printf "k8s.namespace.name=%s" .Release.Namespace) "k8s.pod.name=$(POD_NAME)" }}
{{- range $key, $value := .Values.otel.resourceAttributes }}
{{- $pairs = append $pairs (printf "%s=%s" $key $value) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{/* Name of the Secret holding the server certificate: tls.existingSecret, or the one the cert-manager Certificate
writes. */}}
{{- define "certa.tls.secretName" -}}
{{- if .Values.tls.certManager.enabled }}
{{- printf "%s-tls" (include "certa.fullname" . | trunc 59 | trimSuffix "-") }}
{{- else }}
{{- .Values.tls.existingSecret }}
{{- end }}
{{- end }}

{{/* Name of the ConfigMap holding the tenants file (CERTA_TENANTS_FILE). */}}
{{- define "certa.tenants.name" -}}
{{- printf "%s-tenants" (include "certa.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{/* The controller's probe port: the plaintext health-only port with TLS, else the gRPC port. */}}
{{- define "certa.probePort" -}}
{{- ternary .Values.controller.healthPort .Values.controller.port .Values.tls.enabled }}
{{- end }}

{{/* One tenant policy of the tenants file: the quotas.* fields given, as the controller's snake_case fields; `pools`
(when given) as {NAME: {"samples_per_second": F, "burst": N, "max_wait_s": F, "exploration": F}}, the optional keys
only when set. */}}
{{- define "certa.tenantPolicy" -}}
{{- $names := dict "maxInFlight" "max_in_flight" "tokensPerMinute" "tokens_per_minute" "maxTokensPerRequest" "max_tokens_per_request" "maxBatchSize" "max_batch_size" "weight" "weight" }}
{{- $entry := . }}
{{- $policy := dict }}
{{- range $key, $field := $names }}
{{- if hasKey $entry $key }}
{{- $_ := set $policy $field (int64 (index $entry $key)) }}
{{- end }}
{{- end }}
{{- if hasKey . "logContent" }}
{{- $_ := set $policy "log_content" .logContent }}
{{- end }}
{{- if hasKey . "models" }}
{{- $_ := set $policy "models" (.models | default list) }}
{{- end }}
{{- if hasKey . "pools" }}
{{- $pools := dict }}
{{- range $name, $pool := (.pools | default dict) }}
{{- $pool = $pool | default dict }}
{{- $rendered := dict "samples_per_second" (float64 $pool.samplesPerSecond) "burst" (int64 $pool.burst) }}
{{- if hasKey $pool "maxWaitS" }}
{{- $_ := set $rendered "max_wait_s" (float64 $pool.maxWaitS) }}
{{- end }}
{{- if hasKey $pool "exploration" }}
{{- $_ := set $rendered "exploration" (float64 $pool.exploration) }}
{{- end }}
{{- $_ := set $pools $name $rendered }}
{{- end }}
{{- $_ := set $policy "pools" $pools }}
{{- end }}
{{- toJson $policy }}
{{- end }}

{{/* CERTA_TENANTS_FILE: {"default": POLICY, "tenants": {NAME: POLICY}} from quotas.default and quotas.tenants. The
default always has `pools` (as the controller's default does); a tenant only when it sets them. */}}
{{- define "certa.tenantsJson" -}}
{{- $tenants := dict }}
{{- range $name, $entry := .Values.quotas.tenants }}
{{- $_ := set $tenants $name (include "certa.tenantPolicy" ($entry | default dict) | fromJson) }}
{{- end }}
{{- $default := include "certa.tenantPolicy" (.Values.quotas.default | default dict) | fromJson }}
{{- if not (hasKey $default "pools") }}
{{- $_ := set $default "pools" dict }}
{{- end }}
{{- toPrettyJson (dict "default" $default "tenants" $tenants) }}
{{- end }}

{{/* Port of an http(s):// or host:port URL (JSON list of one), `default` when it names none: call with
(dict "url" URL "default" PORT). */}}
{{- define "certa.urlPort" -}}
{{- $host := (urlParse .url).host }}
{{- list (ternary (regexFind "[0-9]+$" $host) (toString .default) (regexMatch ":[0-9]+$" $host) | int) | toJson }}
{{- end }}

{{/* TCP ports of the OTLP collector (JSON list): networkPolicy.egress.otlp.ports, else the port of otel.endpoint
(443, gRPC's default, when it names none). */}}
{{- define "certa.otlp.ports" -}}
{{- $ports := .Values.networkPolicy.egress.otlp.ports }}
{{- if $ports }}
{{- toJson $ports }}
{{- else }}
{{- include "certa.urlPort" (dict "url" .Values.otel.endpoint "default" 443) }}
{{- end }}
{{- end }}

{{/* Peers allowed to call the controller's gRPC port (JSON list): networkPolicy.ingress.namespaces x podLabels, then
ingress.from; the release namespace when all are empty. The test pod is added by the template. */}}
{{- define "certa.ingressPeers" -}}
{{- $ingress := .Values.networkPolicy.ingress }}
{{- $peers := list }}
{{- range $ingress.namespaces }}
{{- $peer := dict "namespaceSelector" (dict "matchLabels" (dict "kubernetes.io/metadata.name" .)) }}
{{- if $ingress.podLabels }}
{{- $_ := set $peer "podSelector" (dict "matchLabels" $ingress.podLabels) }}
{{- end }}
{{- $peers = append $peers $peer }}
{{- end }}
{{- if and $ingress.podLabels (not $ingress.namespaces) }}
{{- $peers = append $peers (dict "podSelector" (dict "matchLabels" $ingress.podLabels)) }}
{{- end }}
{{- $peers = concat $peers $ingress.from }}
{{- if not $peers }}
{{- $peers = list (dict "podSelector" (dict)) }}
{{- end }}
{{- toJson $peers }}
{{- end }}

{{/*
TLS, authentication and quotas: combinations the controller refuses at start (or that cannot work), refused when
rendering instead. Part of certa.validate; values.schema.json says most of it too.
*/}}
{{- define "certa.validateSecurity" -}}
{{- $tls := .Values.tls }}
{{- $auth := .Values.auth }}
{{- $jwks := $auth.jwt.jwks }}
{{- if $tls.enabled }}
{{- if and $tls.certManager.enabled $tls.existingSecret }}
{{- fail "tls.existingSecret and tls.certManager.enabled are mutually exclusive: the cert-manager Certificate writes the Secret RELEASE-certa-tls; leave tls.existingSecret empty" }}
{{- end }}
{{- if not (or $tls.certManager.enabled $tls.existingSecret) }}
{{- fail "tls.enabled needs the server certificate: set tls.existingSecret (a kubernetes.io/tls Secret) or tls.certManager.enabled=true" }}
{{- end }}
{{- if eq (int .Values.controller.healthPort) (int .Values.controller.port) }}
{{- fail (printf "controller.healthPort (%v) must differ from controller.port: with TLS the plaintext health port is a second listener" .Values.controller.healthPort) }}
{{- end }}
{{- else }}
{{- if or $tls.clientAuth $tls.certManager.enabled }}
{{- fail "tls.clientAuth and tls.certManager.enabled need tls.enabled=true (they configure the controller's TLS)" }}
{{- end }}
{{- end }}
{{- if and $tls.clientCaSecret (not $tls.clientAuth) }}
{{- fail "tls.clientCaSecret is the CA of client certificates: it needs tls.clientAuth=true" }}
{{- end }}
{{- if $tls.certManager.enabled }}
{{- if not $tls.certManager.issuerRef.name }}
{{- fail "tls.certManager.enabled needs tls.certManager.issuerRef.name (the Issuer or ClusterIssuer signing the certificate)" }}
{{- end }}
{{- if not (.Capabilities.APIVersions.Has "cert-manager.io/v1") }}
{{- fail "tls.certManager.enabled needs cert-manager: the cluster does not serve cert-manager.io/v1 (install cert-manager first; `helm template` needs --api-versions cert-manager.io/v1)" }}
{{- end }}
{{- end }}
{{- if and $jwks.existingSecret $jwks.existingConfigMap }}
{{- fail "auth.jwt.jwks.existingSecret and auth.jwt.jwks.existingConfigMap are mutually exclusive: the JWKS comes from one of them" }}
{{- end }}
{{- if and $jwks.url (or $jwks.existingSecret $jwks.existingConfigMap) }}
{{- fail "auth.jwt.jwks.url excludes auth.jwt.jwks.existingSecret and auth.jwt.jwks.existingConfigMap: the JWKS comes from one place" }}
{{- end }}
{{- $jwt := or $jwks.existingSecret $jwks.existingConfigMap $jwks.url }}
{{- if and $jwt (not (and $auth.jwt.issuer $auth.jwt.audience)) }}
{{- fail "JWT authentication (auth.jwt.jwks) needs auth.jwt.issuer and auth.jwt.audience: tokens are checked against both" }}
{{- end }}
{{- if and (not $jwt) (or $auth.jwt.issuer $auth.jwt.audience) }}
{{- fail "auth.jwt.issuer and auth.jwt.audience need a JWKS to verify tokens: set auth.jwt.jwks.existingSecret or auth.jwt.jwks.existingConfigMap" }}
{{- end }}
{{- if and $auth.clientCert (not $tls.clientAuth) }}
{{- fail "auth.clientCert needs mutual TLS: set tls.enabled=true and tls.clientAuth=true (the verified client certificate names the tenant)" }}
{{- end }}
{{- $methods := or $auth.apiKeys.existingSecret $jwt $auth.clientCert }}
{{- if and $auth.disabled $methods }}
{{- fail "auth.disabled turns authentication off: it excludes auth.apiKeys, auth.jwt and auth.clientCert" }}
{{- end }}
{{- if not (or $auth.disabled $methods) }}
{{- fail "no authentication configured: the controller refuses to start without one. Set auth.apiKeys.existingSecret (a Secret with the API keys file; `certa auth new-key --tenant NAME` makes a key), auth.jwt.jwks.existingSecret, auth.jwt.jwks.existingConfigMap or auth.jwt.jwks.url with auth.jwt.issuer and auth.jwt.audience (JWT), or auth.clientCert=true with tls.clientAuth=true (client certificates); auth.disabled=true is for local development only" }}
{{- end }}
{{- range $name, $_ := .Values.quotas.tenants }}
{{- if not (regexMatch "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$" $name) }}
{{- fail (printf "quotas.tenants: %q is not a tenant name (1-64 letters, digits, '.', '_' or '-', starting with a letter or digit)" $name) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The controller Services' ports: gRPC, the plaintext health port (with TLS), HTTP (with controller.httpPort),
metrics (when served and `metrics` is true: the headless Service leaves it out, so a ServiceMonitor, which selects
both Services, scrapes each pod once). Call with (dict "context" $ "metrics" BOOL). */}}
{{- define "certa.servicePorts" -}}
{{- $v := .context.Values -}}
- name: grpc
  port: {{ $v.service.port }}
  targetPort: grpc
  protocol: TCP
  appProtocol: grpc
{{- if $v.tls.enabled }}
# Plaintext, serving only grpc.health.v1 (the TLS port serves everything): for `helm test` and health checkers
# that cannot speak TLS.
- name: health
  port: {{ $v.controller.healthPort }}
  targetPort: health
  protocol: TCP
  appProtocol: grpc
{{- end }}
{{- with $v.controller.httpPort }}
- name: http
  port: {{ . }}
  targetPort: http
  protocol: TCP
  appProtocol: {{ ternary "https" "http" $v.tls.enabled }}
{{- end }}
{{- if and .metrics (eq (include "certa.metricsEnabled" .context) "true") }}
- name: metrics
  port: {{ $v.metrics.port }}
  targetPort: metrics
  protocol: TCP
  appProtocol: http
{{- end }}
{{- end }}
