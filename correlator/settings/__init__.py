"""The only place configuration is read: CORRELATOR_* environment variables and a YAML file.

Precedence, highest first: command-line flags, environment variables, the YAML file given with
`--config`, the defaults below. The defaults are the embedded mode: a SQLite file in the working
directory and a server bound to 127.0.0.1.

Each group is a section of the YAML file and a prefix of the environment variable:
`database.url` is `CORRELATOR_DATABASE_URL`, `auth.bearer_token` is
`CORRELATOR_AUTH_BEARER_TOKEN`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from correlator.errors import ConfigError
from correlator.settings.backends import JaegerSettings, LokiSettings, PrometheusSettings
from correlator.settings.base import (
    ENV_PREFIX,
    SinkSettingsBase,
    database_scheme,
    is_loopback,
    mask_url,
    mask_urls,
)
from correlator.settings.correlation import (
    INPUT_KINDS,
    CorrelationSettings,
    InputKind,
    KeepInputsSettings,
    SignalSettings,
)
from correlator.settings.platform import (
    KubernetesSettings,
    ProvisioningSettings,
    TeamBinding,
    TenancySettings,
)
from correlator.settings.service import (
    AuthSettings,
    DatabaseSettings,
    IntakeSettings,
    LeaderSettings,
    LogSettings,
    QueueSettings,
    ServerSettings,
)

# isort: split
# Last: composing `notify.sinks` imports every sink module, and what those import may take the
# groups above from this package (the store its DatabaseSettings) before it is complete.
from correlator.settings.notify import NotifySettings, SinkSettings

__all__ = [
    "ENV_PREFIX",
    "INPUT_KINDS",
    "AuthSettings",
    "CorrelationSettings",
    "DatabaseSettings",
    "InputKind",
    "IntakeSettings",
    "JaegerSettings",
    "KeepInputsSettings",
    "KubernetesSettings",
    "LeaderSettings",
    "LogSettings",
    "LokiSettings",
    "NotifySettings",
    "PrometheusSettings",
    "ProvisioningSettings",
    "QueueSettings",
    "ServerSettings",
    "Settings",
    "SignalSettings",
    "SinkSettings",
    "SinkSettingsBase",
    "TeamBinding",
    "TenancySettings",
    "database_scheme",
    "effective_config",
    "is_loopback",
    "load_settings",
    "mask_url",
    "reference_markdown",
]


class Settings(BaseSettings):
    """Everything correlator can be told."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
        frozen=True,
    )

    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    auth: AuthSettings = AuthSettings()
    intake: IntakeSettings = IntakeSettings()
    queue: QueueSettings = QueueSettings()
    provisioning: ProvisioningSettings = ProvisioningSettings()
    kubernetes: KubernetesSettings = KubernetesSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    loki: LokiSettings = LokiSettings()
    jaeger: JaegerSettings = JaegerSettings()
    correlation: CorrelationSettings = CorrelationSettings()
    notify: NotifySettings = NotifySettings()
    leader: LeaderSettings = LeaderSettings()
    tenancy: TenancySettings = TenancySettings()
    log: LogSettings = LogSettings()

    @model_validator(mode="after")
    def _provisioning_target_is_usable(self) -> Settings:
        options = self.provisioning
        if options.source_dir is None and not self.kubernetes.discovery:
            return self  # serve does not provision
        if options.target == "grafana" and options.grafana_token is None:
            raise ValueError(
                "provisioning.target grafana needs provisioning.grafana_token "
                "(CORRELATOR_PROVISIONING_GRAFANA_TOKEN)"
            )
        if options.target == "files" and options.out_dir is None:
            raise ValueError(
                "provisioning.target files needs provisioning.out_dir "
                "(CORRELATOR_PROVISIONING_OUT_DIR)"
            )
        return self


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read the environment and the optional YAML file; raise ConfigError with what is wrong.

    `overrides` are nested dicts of command-line values, e.g. `server={"port": 9000}`.
    """
    if config_file is not None:
        _check_yaml_file(config_file)

    class _WithFile(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if config_file is not None:
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
            return tuple(sources)

    try:
        loaded = _WithFile(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    # Hand back the plain class so the rest of the program sees one type.
    return Settings.model_construct(
        **{name: getattr(loaded, name) for name in Settings.model_fields}
    )


def _check_yaml_file(path: Path) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of sections, not {type(data).__name__}"
        )


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        path = ".".join(str(part) for part in error["loc"]) or "settings"
        env = ENV_PREFIX + "_".join(str(part) for part in error["loc"][:2]).upper()
        lines.append(f"{path} ({env}): {error['msg']}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def effective_config(settings: Settings) -> dict[str, Any]:
    """The settings as plain data with every secret masked (for `correlator config`)."""
    data: dict[str, Any] = mask_urls(settings.model_dump(mode="json"))
    return data


def reference_markdown() -> str:
    """The configuration reference (docs/reference/configuration.md), from the fields above."""
    rows = [
        "| Environment variable | YAML key | Default | Description |",
        "| --- | --- | --- | --- |",
    ]
    for group_name, group_field in Settings.model_fields.items():
        group = group_field.annotation
        assert isinstance(group, type) and issubclass(group, BaseModel)
        for name, field in group.model_fields.items():
            env = f"{ENV_PREFIX}{group_name}_{name}".upper()
            rows.append(
                f"| `{env}` | `{group_name}.{name}` | {_default_text(field)} | "
                f"{(field.description or '').replace('|', '/')} |"
            )
    return "\n".join(rows) + "\n"


def _default_text(field: FieldInfo) -> str:
    default = field.get_default(call_default_factory=True)
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, BaseModel):  # a nested group: as the environment takes it (JSON)
        return f"`{default.model_dump_json()}`"
    return f"`{default}`"
