{{/* Names, labels and the checks every render runs. */}}

{{- define "correlator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "correlator.fullname" -}}
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

{{- define "correlator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "correlator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "correlator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "correlator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The `helm test` Pod's labels: the chart's, but a name of its own, so no selector of the
app (Service, PDB, spread, NetworkPolicy) picks it up. */}}
{{- define "correlator.testLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "correlator.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: helm-test
{{- end }}

{{- define "correlator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "correlator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.create: false needs serviceAccount.name" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "correlator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The Secret the pods read CORRELATOR_* variables from. */}}
{{- define "correlator.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else }}
{{- printf "%s-secrets" (include "correlator.fullname" .) }}
{{- end }}
{{- end }}

{{/* Chart-made Secret entries: CORRELATOR_* name -> value (empty ones left out). */}}
{{- define "correlator.secretEntries" -}}
{{- $s := .Values.secrets }}
{{- $entries := dict }}
{{- range $key, $env := dict "databaseUrl" "CORRELATOR_DATABASE_URL" "bearerToken" "CORRELATOR_AUTH_BEARER_TOKEN" "basicAuthUsername" "CORRELATOR_AUTH_BASIC_USERNAME" "basicAuthPassword" "CORRELATOR_AUTH_BASIC_PASSWORD" "grafanaToken" "CORRELATOR_PROVISIONING_GRAFANA_TOKEN" "prometheusBearerToken" "CORRELATOR_PROMETHEUS_BEARER_TOKEN" "lokiBearerToken" "CORRELATOR_LOKI_BEARER_TOKEN" "jaegerBearerToken" "CORRELATOR_JAEGER_BEARER_TOKEN" }}
{{- if get $s $key }}
{{- $_ := set $entries $env (get $s $key) }}
{{- end }}
{{- end }}
{{- if $s.notifySinks }}
{{- $_ := set $entries "CORRELATOR_NOTIFY_SINKS" (toJson $s.notifySinks) }}
{{- end }}
{{- range $env, $value := $s.extra }}
{{- $_ := set $entries $env $value }}
{{- end }}
{{- toJson $entries }}
{{- end }}

{{/* The chart-made Secret's final data, the webhook token included: the Secret renders it
and the pods hash it, so they roll exactly when it changes. Without a credential in the values
the token the release already has (lookup) is kept; where lookup sees no cluster (helm
template, Argo CD, --dry-run, helm-diff) or the release is new, the render fails rather than
make a token each render that the running pods would not know. */}}
{{- define "correlator.secretData" -}}
{{- $entries := fromJson (include "correlator.secretEntries" .) }}
{{- if not (or .Values.secrets.bearerToken .Values.secrets.basicAuthPassword) }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "correlator.secretName" .) }}
{{- $kept := dig "data" "CORRELATOR_AUTH_BEARER_TOKEN" "" ($existing | default dict) }}
{{- if not $kept }}
{{- fail "the webhook needs a credential: set secrets.bearerToken (e.g. --set secrets.bearerToken=$(openssl rand -hex 32), or keep it in your GitOps secret store), secrets.basicAuthUsername and secrets.basicAuthPassword, secrets.existingSecret or externalSecret.enabled. The chart makes none itself: under helm template, Argo CD or helm-diff a generated token would change at every render" }}
{{- end }}
{{- $_ := set $entries "CORRELATOR_AUTH_BEARER_TOKEN" (b64dec $kept) }}
{{- end }}
{{- toJson $entries }}
{{- end }}

{{/* Settings that hold secrets: refused in `config` (they would land in a ConfigMap). */}}
{{- define "correlator.validate" -}}
{{- $v := .Values }}
{{- if and (eq $v.store "sqlite") (gt (int $v.replicaCount) 1) }}
{{- fail (printf "replicaCount: %d needs store: postgresql; SQLite is one process's file, so replicas cannot share it (set store: postgresql and CORRELATOR_DATABASE_URL in the Secret, or replicaCount: 1)" (int $v.replicaCount)) }}
{{- end }}
{{- if and (eq $v.store "sqlite") $v.autoscaling.enabled }}
{{- fail "autoscaling.enabled needs store: postgresql; SQLite cannot be shared by several replicas" }}
{{- end }}
{{- $external := or $v.secrets.existingSecret $v.externalSecret.enabled }}
{{- if and $v.secrets.existingSecret $v.externalSecret.enabled }}
{{- fail "set secrets.existingSecret or externalSecret.enabled, not both" }}
{{- end }}
{{- $given := fromJson (include "correlator.secretEntries" .) }}
{{- if and $external $given }}
{{- fail (printf "secrets.%s must be empty with secrets.existingSecret or externalSecret.enabled: the values would be stored in the release (helm get values)" (keys $given | sortAlpha | join ", ")) }}
{{- end }}
{{- if and (eq $v.store "postgresql") (not $external) (not $v.secrets.databaseUrl) }}
{{- fail "store: postgresql needs secrets.databaseUrl (or secrets.existingSecret / externalSecret with CORRELATOR_DATABASE_URL)" }}
{{- end }}
{{- range $section, $fields := dict "database" (list "url") "auth" (list "bearer_token" "basic_password" "read_bearer_token") "provisioning" (list "grafana_token") "notify" (list "sinks") "prometheus" (list "bearer_token" "basic_password") "loki" (list "bearer_token" "basic_password") "jaeger" (list "bearer_token" "basic_password") }}
{{- $group := get $v.config $section | default dict }}
{{- range $fields }}
{{- if hasKey $group . }}
{{- fail (printf "config.%s.%s is a secret: set it through secrets (or your Secret), not config, which is rendered into a ConfigMap" $section .) }}
{{- end }}
{{- end }}
{{- end }}
{{- /* Header values (API keys, tokens), a URL's user:password and secret query values
(Teams' sig=, token=, …) would land in the ConfigMap too: refused wherever they appear. */}}
{{- range $section, $group := $v.config }}
{{- if kindIs "map" $group }}
{{- range $field, $value := $group }}
{{- $env := printf "CORRELATOR_%s_%s" (upper $section) (upper $field) }}
{{- if and (eq $field "headers") $value }}
{{- fail (printf "config.%s.headers holds secrets (header values are API keys and tokens): put %s in your Secret (secrets.existingSecret or externalSecret), not config, which is rendered into a ConfigMap" $section $env) }}
{{- end }}
{{- if and (kindIs "string" $value) (regexMatch "^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@" $value) }}
{{- fail (printf "config.%s.%s holds a user:password in its URL: put %s in your Secret (secrets.existingSecret or externalSecret), not config, which is rendered into a ConfigMap" $section $field $env) }}
{{- end }}
{{- if and (kindIs "string" $value) (regexMatch "(?i)[?&;](sig|signature|token|access_token|api_key|apikey|key|secret|password|passwd|auth|code|client_secret)=" $value) }}
{{- fail (printf "config.%s.%s holds a secret in its query string: put %s in your Secret (secrets.existingSecret or externalSecret), not config, which is rendered into a ConfigMap" $section $field $env) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- /* Keys the chart wires to its own objects (the container port and probes, the Role's
Lease name, the RBAC's namespaces): a `config` value would render but break them. */}}
{{- $owned := dict "server" (dict "host" "the probes and Service reach 0.0.0.0" "port" "containerPort, probes and the Service use 8080; set service.port for the Service") "kubernetes" (dict "discovery" "set discovery.enabled (it grants the RBAC)" "namespaces" "set rbac.namespaces (the Roles follow it)" "prometheus_rules" "set rbac.prometheusRules (it grants the RBAC)") "leader" (dict "election" "the chart picks the Lease" "lease_name" "the Role grants this one Lease by name" "lease_duration_s" "set leaderElection.leaseDurationSeconds" "renew_deadline_s" "set leaderElection.renewDeadlineSeconds" "retry_period_s" "set leaderElection.retryPeriodSeconds") }}
{{- range $section, $fields := $owned }}
{{- $group := get $v.config $section | default dict }}
{{- if kindIs "map" $group }}
{{- range $field, $why := $fields }}
{{- if hasKey $group $field }}
{{- fail (printf "config.%s.%s is set by the chart and cannot be overridden (%s): remove it from config" $section $field $why) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $target := dig "provisioning" "target" "grafana" $v.config }}
{{- if and $v.discovery.enabled (eq $target "grafana") (not $external) (not $v.secrets.grafanaToken) }}
{{- fail "discovery.enabled provisions Grafana: set secrets.grafanaToken (or CORRELATOR_PROVISIONING_GRAFANA_TOKEN in secrets.existingSecret), or config.provisioning.target: files" }}
{{- end }}
{{- if and $v.externalSecret.enabled (not $v.externalSecret.secretStoreRef.name) }}
{{- fail "externalSecret.enabled needs externalSecret.secretStoreRef.name" }}
{{- end }}
{{- if not $external }}
{{- $_ := include "correlator.secretData" . }}
{{- end }}
{{- include "correlator.validateCombinations" . }}
{{- end }}

{{/* The file the service reads: chart wiring, then the user's `config` on top. */}}
{{- define "correlator.configFile" -}}
{{- $wiring := dict "server" (dict "host" "0.0.0.0" "port" 8080 "shutdown_timeout_s" 30) }}
{{- if eq .Values.store "sqlite" }}
{{- $_ := set $wiring "database" (dict "url" "sqlite:////var/lib/correlator/correlator.db") }}
{{- end }}
{{- if .Values.discovery.enabled }}
{{- $_ := set $wiring "kubernetes" (dict "discovery" true "namespaces" .Values.rbac.namespaces "prometheus_rules" .Values.rbac.prometheusRules) }}
{{- end }}
{{- $_ := set $wiring "leader" (dict "election" "auto" "lease_name" (printf "%s-provisioning" (include "correlator.fullname" .)) "lease_duration_s" .Values.leaderElection.leaseDurationSeconds "renew_deadline_s" .Values.leaderElection.renewDeadlineSeconds "retry_period_s" .Values.leaderElection.retryPeriodSeconds) }}
{{- toYaml (mustMergeOverwrite $wiring (deepCopy .Values.config)) }}
{{- end }}

{{/* The pod's grace period: the preStop sleep, the service's drain and its shutdown budget (as
the rendered config sets them), and a margin; never below terminationGracePeriodSeconds. */}}
{{- define "correlator.gracePeriodSeconds" -}}
{{- $server := (include "correlator.configFile" . | fromYaml).server }}
{{- $needed := add .Values.preStopSleepSeconds .Values.shutdownMarginSeconds | float64 | addf (float64 (default 0 $server.drain_s)) (float64 $server.shutdown_timeout_s) | ceil | int }}
{{- max $needed (int .Values.terminationGracePeriodSeconds) }}
{{- end }}

{{/* A probe on the chart's port: (list PATH TIMINGS); the timings come from `probes`. */}}
{{- define "correlator.probe" -}}
{{- $path := index . 0 }}
{{- $timings := index . 1 | default dict }}
{{- toYaml (merge (dict "httpGet" (dict "path" $path "port" "http")) (omit $timings "httpGet" "exec" "tcpSocket" "grpc")) }}
{{- end }}

{{/* topologySpreadConstraints: the user's list (a missing labelSelector gets the pods'), or
the chart's spread: nodes DoNotSchedule, zones ScheduleAnyway by default. matchLabelKeys
keeps a rollout's old pods out of the count, so a surge pod is not held Pending by them. */}}
{{- define "correlator.topologySpread" -}}
{{- $selector := dict "matchLabels" (include "correlator.selectorLabels" . | fromYaml) }}
{{- $constraints := list }}
{{- if .Values.topologySpreadConstraints }}
{{- range .Values.topologySpreadConstraints }}
{{- $constraints = append $constraints (merge (deepCopy .) (dict "labelSelector" $selector)) }}
{{- end }}
{{- else if .Values.spread.enabled }}
{{- range $key, $policy := dict "kubernetes.io/hostname" $.Values.spread.nodes "topology.kubernetes.io/zone" $.Values.spread.zones }}
{{- $constraints = append $constraints (dict "maxSkew" (int $.Values.spread.maxSkew) "topologyKey" $key "whenUnsatisfiable" $policy "labelSelector" $selector "matchLabelKeys" (list "pod-template-hash")) }}
{{- end }}
{{- end }}
{{- toYaml $constraints }}
{{- end }}

{{/* Cluster-scoped objects (ClusterRole, ClusterRoleBinding) carry the namespace: the same
release name in two namespaces must not share, or overwrite, one. */}}
{{- define "correlator.clusterName" -}}
{{- $fullname := include "correlator.fullname" . }}
{{- if hasPrefix (printf "%s-" .Release.Namespace) $fullname }}
{{- $fullname }}
{{- else }}
{{- printf "%s-%s" .Release.Namespace $fullname | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* CPU quantity → millicores ("250m", "0.5", 1). */}}
{{- define "correlator.millicores" -}}
{{- $q := toString . }}
{{- if hasSuffix "m" $q }}{{ trimSuffix "m" $q | float64 | int }}{{ else }}{{ mulf (float64 $q) 1000.0 | int }}{{ end }}
{{- end }}

{{/* How Alertmanager authenticates to the webhook: bearer or basic (alertmanagerConfig.auth,
else basic when the chart's Secret holds only basic auth). */}}
{{- define "correlator.alertmanagerAuth" -}}
{{- $v := .Values }}
{{- if ne $v.alertmanagerConfig.auth "auto" }}
{{- $v.alertmanagerConfig.auth }}
{{- else if and $v.secrets.basicAuthPassword (not $v.secrets.bearerToken) (not $v.secrets.existingSecret) (not $v.externalSecret.enabled) }}
{{- "basic" }}
{{- else }}
{{- "bearer" }}
{{- end }}
{{- end }}

{{/* Combinations that render but cannot run: each fails naming the values (issue 21). */}}
{{- define "correlator.validateCombinations" -}}
{{- $v := .Values }}
{{- $l := $v.leaderElection }}
{{- if not (lt (float64 $l.renewDeadlineSeconds) (float64 $l.leaseDurationSeconds)) }}
{{- fail (printf "leaderElection.renewDeadlineSeconds (%v) must be less than leaderElection.leaseDurationSeconds (%v): the service refuses to start otherwise (a leader must stop writing before another may take over)" $l.renewDeadlineSeconds $l.leaseDurationSeconds) }}
{{- end }}
{{- if not (lt (float64 $l.retryPeriodSeconds) (float64 $l.renewDeadlineSeconds)) }}
{{- fail (printf "leaderElection.retryPeriodSeconds (%v) must be less than leaderElection.renewDeadlineSeconds (%v): the service refuses to start otherwise" $l.retryPeriodSeconds $l.renewDeadlineSeconds) }}
{{- end }}
{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- fail (printf "autoscaling.minReplicas (%d) is greater than autoscaling.maxReplicas (%d): the HorizontalPodAutoscaler would be refused" (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- end }}
{{- if $v.autoscaling.enabled }}
{{- $request := dig "requests" "cpu" "" $v.resources }}
{{- if not $request }}
{{- fail "autoscaling.enabled scales on CPU utilisation, a share of resources.requests.cpu: set resources.requests.cpu" }}
{{- end }}
{{- $millicores := include "correlator.millicores" $request | int }}
{{- $target := int $v.autoscaling.targetCPUUtilizationPercentage }}
{{- if lt (mul $millicores $target) 25000 }}
{{- fail (printf "autoscaling.targetCPUUtilizationPercentage: %d of resources.requests.cpu: %s scales out at %dm of CPU, less than the 250m one analysis process takes: the first correlation would send the HPA to autoscaling.maxReplicas. Set resources.requests.cpu to at least %dm (or a higher target)" $target (toString $request) (div (mul $millicores $target) 100) (div (add 25000 (sub $target 1)) $target)) }}
{{- end }}
{{- end }}
{{- if and $v.networkPolicy.enabled $v.ingress.enabled (not $v.networkPolicy.ingressNamespace) }}
{{- fail "networkPolicy.enabled with ingress.enabled needs networkPolicy.ingressNamespace (the ingress controller's namespace): the policy would block the controller" }}
{{- end }}
{{- if and $v.prometheusRule.enabled (not $v.serviceMonitor.enabled) }}
{{- fail (printf "prometheusRule.enabled needs serviceMonitor.enabled: the alerts select up{job=\"%s\"}, which only the ServiceMonitor's scrape makes, so CorrelatorDown would fire forever" (include "correlator.fullname" .)) }}
{{- end }}
{{- $target := dig "provisioning" "target" "grafana" $v.config }}
{{- if and $v.discovery.enabled (eq $target "grafana") (not (dig "provisioning" "grafana_url" "" $v.config)) }}
{{- fail "discovery.enabled provisions Grafana: set config.provisioning.grafana_url (e.g. http://grafana.monitoring), or config.provisioning.target: files; without it the service would write to 127.0.0.1:3000" }}
{{- end }}
{{- if and $v.externalSecret.enabled (not $v.externalSecret.data) (not $v.externalSecret.dataFrom) }}
{{- fail "externalSecret.enabled needs externalSecret.data or externalSecret.dataFrom: an ExternalSecret with neither makes an empty Secret (no webhook credential, no database URL)" }}
{{- end }}
{{- if and (not $v.serviceAccount.create) (not $v.serviceAccount.name) }}
{{- fail "serviceAccount.create: false needs serviceAccount.name (the account you made): the chart would run the pods as, and bind its Roles to, the namespace's default account" }}
{{- end }}
{{- $minAvailable := $v.podDisruptionBudget.minAvailable }}
{{- if and $v.podDisruptionBudget.enabled (kindIs "float64" $minAvailable) }}
{{- $replicas := ternary (int $v.autoscaling.minReplicas) (int $v.replicaCount) $v.autoscaling.enabled }}
{{- if and (gt $replicas 1) (ge (int $minAvailable) $replicas) }}
{{- fail (printf "podDisruptionBudget.minAvailable (%d) must be less than the replicas (%d): no drain could ever evict a pod" (int $minAvailable) $replicas) }}
{{- end }}
{{- end }}
{{- if $v.alertmanagerConfig.enabled }}
{{- $auth := include "correlator.alertmanagerAuth" . }}
{{- $external := or $v.secrets.existingSecret $v.externalSecret.enabled $v.alertmanagerConfig.credentials.secretName }}
{{- if and (eq $auth "basic") (not $external) (not (and $v.secrets.basicAuthUsername $v.secrets.basicAuthPassword)) }}
{{- fail "alertmanagerConfig.auth: basic needs secrets.basicAuthUsername and secrets.basicAuthPassword (or alertmanagerConfig.credentials.secretName): the AlertmanagerConfig would reference keys the Secret does not hold" }}
{{- end }}
{{- if and (eq $auth "bearer") (not $external) (not $v.secrets.bearerToken) $v.secrets.basicAuthPassword }}
{{- fail "alertmanagerConfig.auth: bearer needs secrets.bearerToken (or alertmanagerConfig.auth: basic with basic auth, or alertmanagerConfig.credentials.secretName): the AlertmanagerConfig would reference a key the Secret does not hold" }}
{{- end }}
{{- end }}
{{- end }}
