"""The one place environment variables are read.

:class:`Settings` holds what the core reads, :class:`ServerSettings` what the service reads, and
each plugin declares its own :class:`PluginSettings` subclass, read from
``IMGCTX_<GROUP>_<NAME>`` (``IMGCTX_BLIP_MODEL``) and given values through
``Settings.plugin_settings``. Every field is read from ``IMGCTX_<NAME>``; the fields the service
contract names are also read from the contract's plain names (``DEVICE``, ``DB_PATH``,
``COLLECTION_NAME``, ``LOG_LEVEL``, ``LOG_FILE``, and the plugin settings behind
``USE_LOCAL_FILES_ONLY``, ``LOCAL_BLIP_MODEL_PATH``, ``LOCAL_CLIP_MODEL_PATH``). The prefixed
name wins when both are set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from imgctx._paths import expand


def contract_name(name: str, *more: str) -> AliasChoices:
    """A field the service contract names: read from IMGCTX_<NAME> (and ``more``), then <NAME>."""
    return AliasChoices(f"IMGCTX_{name}", *more, name)


_S = TypeVar("_S", bound="_Config")
_without_environment_cache: dict[type, type] = {}


class _Config(BaseSettings):
    """What every settings class shares: frozen values, ``from_values`` and ``with_overrides``."""

    model_config = SettingsConfigDict(
        env_prefix="IMGCTX_", env_file=None, extra="ignore", populate_by_name=True, frozen=True
    )
    #: False for instances made by ``from_values``, which never read the environment.
    reads_environment: ClassVar[bool] = True

    @classmethod
    def from_values(cls: type[_S], **values: Any) -> _S:
        """These values and the defaults only, ignoring the environment."""
        return _without_environment(cls)(**values)

    def with_overrides(self: _S, **changes: Any) -> _S:
        """A copy with some fields replaced (``None`` values are ignored)."""
        data = self.model_dump()
        data.update({k: v for k, v in changes.items() if v is not None})
        return type(self).model_validate(data)


def _without_environment(base: type[_S]) -> type[_S]:
    """A subclass of ``base`` that reads only the values it is given (for ``from_values``)."""
    if not base.reads_environment:
        return base
    if base not in _without_environment_cache:

        class WithoutEnvironment(base):  # type: ignore[valid-type,misc]
            reads_environment: ClassVar[bool] = False

            @classmethod
            def settings_customise_sources(
                cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                file_secret_settings: PydanticBaseSettingsSource,
            ) -> tuple[PydanticBaseSettingsSource, ...]:
                return (init_settings,)

        WithoutEnvironment.__name__ = WithoutEnvironment.__qualname__ = base.__name__
        _without_environment_cache[base] = WithoutEnvironment
    return _without_environment_cache[base]  # type: ignore[return-value]


class PluginSettings(_Config):
    """The base of a plugin's own settings.

    Subclass it with ``model_config = plugin_config("myplugin")``: the fields are then read from
    ``IMGCTX_MYPLUGIN_<FIELD>`` and from ``Settings.plugin_settings["myplugin"]``, and the
    plugin gets them with ``settings.plugin(MyPluginSettings)`` in its factory. Register the
    class with the factory (``register("name", factory, settings=MyPluginSettings)``) so that
    ``imgctx plugins`` lists it.
    """

    @classmethod
    def group(cls) -> str:
        """The plugin's settings group: ``blip`` for ``IMGCTX_BLIP_``."""
        prefix = str(cls.model_config.get("env_prefix", ""))
        return prefix.removeprefix("IMGCTX_").rstrip("_").lower().replace("_", "-")


def plugin_config(group: str) -> SettingsConfigDict:
    """The ``model_config`` of a :class:`PluginSettings` subclass for a settings group."""
    return SettingsConfigDict(env_prefix=f"IMGCTX_{group.upper().replace('-', '_')}_")


_P = TypeVar("_P", bound=PluginSettings)


class Settings(_Config):
    """imgctx settings; pass an instance to ``Extractor(settings=...)`` or set the variables."""

    db_path: Path = Field(
        Path("./imgctx_db"),
        validation_alias=contract_name("DB_PATH"),
        description="Folder of the store (SQLite file and FAISS indexes).",
    )
    collection_name: str = Field(
        "image_contexts",
        validation_alias=contract_name("COLLECTION_NAME"),
        description="Name of the collection inside the store.",
    )
    preset: str = Field(
        "offline", description="Named model set to use."
    )
    captioner: str | None = Field(
        None,
        description="Captioner plugin to use instead of the preset's (e.g. 'git'); 'none': no captions. "
                    "Extractor(captioner=...) wins over it.",
    )
    store: str = Field(
        "faiss", description="Vector store plugin name."
    )
    device: Literal["cpu", "cuda", "auto"] = Field(
        "cpu", validation_alias=contract_name("DEVICE"), description="Device models run on."
    )
    cache_dir: Path | None = Field(
        Path("~/.cache/imgctx"),
        description="Folder for imgctx's own caches (zero-shot prompt embeddings); empty: no disk cache.",
    )
    log_level: str = Field(
        "WARNING", validation_alias=contract_name("LOG_LEVEL"), description="Logging level."
    )
    log_file: Path | None = Field(
        None, validation_alias=contract_name("LOG_FILE"), description="Also log to this file."
    )
    batch_size: int = Field(
        16, ge=1, le=1024, description="Images per model batch and per store transaction.",
    )
    decode_workers: int = Field(
        2, ge=1, le=64, description="Threads that read and decode image files.",
    )
    max_image_pixels: int = Field(
        100_000_000, ge=1, description="Images with more pixels are refused (decompression-bomb guard).",
    )
    max_file_bytes: int = Field(
        200 * 1024 * 1024, ge=1, description="Files larger than this are refused without being read.",
    )
    duplicate_mirrors: bool = Field(
        False, description="Duplicate detection also matches mirror images (flipped left-right).",
    )

    plugin_settings: dict[str, dict[str, Any]] = Field(
        default_factory=dict, repr=False,  # may hold secrets (a store's API key)
        description="Values for plugins' own settings by group, e.g. {\"blip\": {\"model\": \"/models/blip\"}} "
        "(JSON in the environment); the plugin's IMGCTX_<GROUP>_* variables fill the rest.",
    )
    load_plugins: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Modules to load as plugins besides the built-ins and the installed entry points "
        "(comma-separated), e.g. imgctx.testing for the tiny test models.",
    )
    server_url: str | None = Field(
        None, description="URL of an imgctx server that `imgctx.connect()` and `imgctx --server` use when given none.",
    )
    api_key: SecretStr | None = Field(
        None, description="API key `imgctx.connect()` and `imgctx --server` send (X-API-Key) when given none.",
    )

    def plugin(self, cls: type[_P]) -> _P:
        """A plugin's settings: ``plugin_settings[group]`` over its environment variables (over
        its defaults only, when these settings were made by ``from_values``)."""
        values = self.plugin_settings.get(cls.group(), {})
        return cls(**values) if self.reads_environment else cls.from_values(**values)

    def with_plugin_settings(self, group: str, **values: Any) -> Settings:
        """A copy with some values of one plugin settings group set."""
        merged = {**self.plugin_settings, group: {**self.plugin_settings.get(group, {}), **values}}
        return self.with_overrides(plugin_settings=merged)

    @field_validator("cache_dir", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("load_plugins", mode="before")
    @classmethod
    def _list(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("db_path", "cache_dir", "log_file", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return None if value is None else expand(value)


def split_list(value: Any) -> Any:
    """A list setting given as text: JSON (``["a", "b"]``) or separated by commas."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class ServerSettings(_Config):
    """Settings of the REST/WebSocket service (``imgctx serve``); the models and the store are
    configured by :class:`Settings`. Read from ``IMGCTX_<NAME>`` like every other setting."""

    host: str = Field("127.0.0.1", description="Interface the server listens on.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port the server listens on.")
    dev: bool = Field(False, description="Development mode: reload the server when the code changes; "
                      "allow all origins unless cors_origins lists some.")
    allowed_roots: Annotated[tuple[Path, ...], NoDecode] = Field(
        (), description="Folders the service may read and write (default: the working directory).",
    )
    upload_dir: str = Field("uploads", description="Default folder for uploads, inside the first allowed root.")
    max_upload_bytes: int = Field(50 * 1024 * 1024, ge=1, description="Largest accepted upload in bytes.")
    api_key: SecretStr | None = Field(None, description="When set, requests need this X-API-Key header.")
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Origins allowed by CORS and for WebSockets opened from a browser page "
        "(default: none; in development mode, all).",
    )
    worker_threads: int = Field(4, ge=1, le=64, description="Threads that run model and store work.")
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Host names the server answers to (the Host header; '*' for any). Default: "
        "the host it listens on, plus localhost, 127.0.0.1 and [::1] when that is a loopback address.",
    )
    max_body_bytes: int = Field(1024 * 1024, ge=1, description="Largest accepted request body other than "
                                "an upload, in bytes.")
    decode_memory_bytes: int = Field(1024 * 1024 * 1024, ge=1, description="Memory that image decodes "
                                     "running at the same time may use, estimated from each image's header.")
    tasks_db: Path | None = Field(
        None, description="SQLite file of background tasks (default: server_tasks.sqlite3 in db_path).",
    )

    watch_dirs: Annotated[tuple[Path, ...], NoDecode] = Field(
        (), description="Folders (inside the allowed roots) the server keeps indexed while they change, "
        "reporting on /ws/processing (comma-separated; default: none).",
    )
    watch_recursive: bool = Field(False, description="Watch the subfolders of watch_dirs too.")
    watch_debounce: float = Field(
        1.0, gt=0, le=60, description="Seconds a watched file must stay unchanged before it is indexed.",
    )

    @field_validator("allowed_roots", "cors_origins", "allowed_hosts", "watch_dirs", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("allowed_roots", "tasks_db", "watch_dirs", mode="after")
    @classmethod
    def _expand(cls, value: Any) -> Any:
        if value is None:
            return None
        return tuple(expand(p) for p in value) if isinstance(value, tuple) else expand(value)
