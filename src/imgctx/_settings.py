"""The one place environment variables are read.

Every field is read from ``IMGCTX_<NAME>`` only; the fields the service contract names are also
read from the contract's plain names (``DEVICE``, ``DB_PATH``, ``COLLECTION_NAME``,
``USE_LOCAL_FILES_ONLY``, ``LOG_LEVEL``, ``LOG_FILE``, ``LOCAL_BLIP_MODEL_PATH``,
``LOCAL_CLIP_MODEL_PATH``). The prefixed name wins when both are set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict


def _contract(name: str) -> AliasChoices:
    """A field the service contract names: read from IMGCTX_<NAME>, then from <NAME>."""
    return AliasChoices(f"IMGCTX_{name}", name)


_S = TypeVar("_S", bound=BaseSettings)


def _without_environment(base: type[_S]) -> type[_S]:
    """A subclass of ``base`` that reads only the values it is given (for ``from_values``)."""

    class WithoutEnvironment(base):  # type: ignore[valid-type,misc]
        @classmethod
        def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings,)

    WithoutEnvironment.__name__ = WithoutEnvironment.__qualname__ = base.__name__
    return WithoutEnvironment


class Settings(BaseSettings):
    """imgctx settings; pass an instance to ``Extractor(settings=...)`` or set the variables."""

    model_config = SettingsConfigDict(
        env_prefix="IMGCTX_", env_file=None, extra="ignore", populate_by_name=True, frozen=True
    )

    db_path: Path = Field(
        Path("./imgctx_db"),
        validation_alias=_contract("DB_PATH"),
        description="Folder of the store (SQLite file and FAISS indexes).",
    )
    collection_name: str = Field(
        "image_contexts",
        validation_alias=_contract("COLLECTION_NAME"),
        description="Name of the collection inside the store.",
    )
    preset: str = Field(
        "offline", description="Named model set to use."
    )
    store: str = Field(
        "faiss", description="Vector store plugin name."
    )
    store_url: str | None = Field(
        None, description="URL of a Chroma or Qdrant server; unset: the store is embedded in db_path.",
    )
    store_api_key: SecretStr | None = Field(
        None, description="API key sent to the store server (Qdrant api-key, Chroma token).",
    )
    store_shards: int | None = Field(
        None, ge=1, description="Qdrant: shards of a collection the store creates (server default if unset).",
    )
    store_replication: int | None = Field(
        None, ge=1, description="Qdrant: replication factor of a collection the store creates (server default if unset).",
    )
    device: Literal["cpu", "cuda", "auto"] = Field(
        "cpu", validation_alias=_contract("DEVICE"), description="Device models run on."
    )
    use_local_files_only: bool = Field(
        False,
        validation_alias=_contract("USE_LOCAL_FILES_ONLY"),
        description="Never contact a model hub; load weights only from disk.",
    )
    local_blip_model_path: Path | None = Field(
        None,
        validation_alias=_contract("LOCAL_BLIP_MODEL_PATH"),
        description="Folder of a BLIP captioning model (standard preset).",
    )
    local_clip_model_path: Path | None = Field(
        None,
        validation_alias=_contract("LOCAL_CLIP_MODEL_PATH"),
        description="Folder of a CLIP model (standard preset).",
    )
    blip_model: str = Field(
        "Salesforce/blip-image-captioning-base",
        description="BLIP captioning model: a hub id or a folder (local_blip_model_path wins).",
    )
    caption_max_length: int = Field(
        30, ge=1, le=512, description="At most this many tokens per generated caption.",
    )
    caption_num_beams: int = Field(
        3, ge=1, le=16, description="Beam-search width of caption generation (1: greedy).",
    )
    caption_batch_size: int | None = Field(
        None, ge=1, le=1024,
        description="Images per BLIP generate call (none: the whole model batch).",
    )
    clip_model: str = Field(
        "ViT-B-32",
        description="open_clip model: an architecture name, hf-hub:org/repo, or a folder (local_clip_model_path wins).",
    )
    clip_pretrained: str = Field(
        "laion2b_s34b_b79k", description="open_clip pretrained tag (or checkpoint file) for clip_model.",
    )
    hf_clip_model: str = Field(
        "openai/clip-vit-base-patch32",
        description="transformers CLIP model for the `clip` embedder: a hub id or a folder.",
    )
    clip_score_range: Annotated[tuple[float, float], NoDecode] = Field(
        (0.15, 0.35),
        description="CLIP text-to-image cosines mapped linearly onto [0, 1] for search scores (low, high).",
    )
    text_model: str = Field(
        "sentence-transformers/all-MiniLM-L6-v2",
        description="sentence-transformers model of the `sentence-transformers` text embedder: a hub id or a folder.",
    )
    cache_dir: Path | None = Field(
        Path("~/.cache/imgctx"),
        description="Folder for imgctx's own caches (zero-shot prompt embeddings); empty: no disk cache.",
    )
    log_level: str = Field(
        "WARNING", validation_alias=_contract("LOG_LEVEL"), description="Logging level."
    )
    log_file: Path | None = Field(
        None, validation_alias=_contract("LOG_FILE"), description="Also log to this file."
    )
    batch_size: int = Field(
        16, ge=1, le=1024, description="Images per model batch and per store transaction.",
    )
    decode_workers: int = Field(
        2, ge=1, le=64, description="Threads that read and decode image files.",
    )
    torch_threads: int | None = Field(
        None, ge=1, description="torch intra-op threads (default: torch's own choice).",
    )
    max_image_pixels: int = Field(
        100_000_000, ge=1, description="Images with more pixels are refused (decompression-bomb guard).",
    )
    max_file_bytes: int = Field(
        200 * 1024 * 1024, ge=1, description="Files larger than this are refused without being read.",
    )
    tag_threshold: float = Field(
        0.1, ge=0.0, le=1.0, description="Minimum tagger confidence for an object tag.",
    )
    max_tags: int = Field(
        5, ge=1, description="At most this many fine labels per image (coarse nouns come on top).",
    )
    exact_search_limit: int = Field(
        50_000, ge=0, description="The faiss store searches exactly up to this many vectors, approximately beyond.",
    )
    server_url: str | None = Field(
        None, description="URL of an imgctx server that `imgctx.connect()` and `imgctx --server` use when given none.",
    )
    api_key: SecretStr | None = Field(
        None, description="API key `imgctx.connect()` and `imgctx --server` send (X-API-Key) when given none.",
    )

    @classmethod
    def from_values(cls, **values: object) -> Settings:
        """Settings from these values and the defaults only, ignoring the environment."""
        return _SettingsWithoutEnvironment(**values)  # type: ignore[arg-type]

    @field_validator("cache_dir", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("clip_score_range", mode="before")
    @classmethod
    def _parse_range(cls, value: object) -> object:
        """From the environment: ``0.15,0.35`` or JSON ``[0.15, 0.35]``."""
        if isinstance(value, str):
            return tuple(float(v) for v in value.strip().strip("[]()").split(",") if v.strip())
        return value

    @field_validator("clip_score_range")
    @classmethod
    def _check_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not -1.0 <= low < high <= 1.0:
            raise ValueError("clip_score_range needs -1 <= low < high <= 1")
        return value

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields replaced (``None`` values are ignored)."""
        data = self.model_dump()
        data.update({k: v for k, v in changes.items() if v is not None})
        return Settings.model_validate(data)


_SettingsWithoutEnvironment = _without_environment(Settings)


def _split_list(value: Any) -> Any:
    """A list setting given as text: JSON (``["a", "b"]``) or separated by commas."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class ServerSettings(BaseSettings):
    """Settings of the REST/WebSocket service (``imgctx serve``); the models and the store are
    configured by :class:`Settings`. Read from ``IMGCTX_<NAME>`` like every other setting."""

    model_config = SettingsConfigDict(
        env_prefix="IMGCTX_", env_file=None, extra="ignore", populate_by_name=True, frozen=True
    )

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
    tasks_db: Path | None = Field(
        None, description="SQLite file of background tasks (default: server_tasks.sqlite3 in db_path).",
    )

    @field_validator("allowed_roots", "cors_origins", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @classmethod
    def from_values(cls, **values: object) -> ServerSettings:
        """Server settings from these values and the defaults only, ignoring the environment."""
        return _ServerSettingsWithoutEnvironment(**values)  # type: ignore[arg-type]

    def with_overrides(self, **changes: object) -> ServerSettings:
        """A copy with some fields replaced (``None`` values are ignored)."""
        data = self.model_dump()
        data.update({k: v for k, v in changes.items() if v is not None})
        return type(self).model_validate(data)


_ServerSettingsWithoutEnvironment = _without_environment(ServerSettings)
