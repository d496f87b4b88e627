"""The standard preset's ONNX Runtime path on tiny real-architecture models: exports keyed by
the weights in the model cache, reused; ONNX vs torch fidelity (cosine >= 0.9999 for fp32
vectors, identical greedy caption tokens); the ``auto`` rule; greedy short captions by default
on CPU; captions switched off. Real torch.onnx exports and real onnxruntime sessions."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("open_clip")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("onnxscript")

from click.testing import CliRunner  # noqa: E402

from imgctx import Extractor  # noqa: E402
from imgctx._backends.blip import BlipCaptioner, BlipSettings  # noqa: E402
from imgctx._backends.clip import OpenClipModel  # noqa: E402
from imgctx._backends.git_caption import GitCaptioner, GitSettings  # noqa: E402
from imgctx._backends.onnx_runtime import choose_runtime  # noqa: E402
from imgctx._cli import cli  # noqa: E402
from imgctx._errors import ConfigurationError  # noqa: E402
from imgctx.testing import (  # noqa: E402
    build_tiny_blip,
    build_tiny_git,
    build_tiny_open_clip,
    build_tiny_sentence_transformer,
    settings_for_tests,
)

TEXTS = ["a cat on a sofa", "a rocket", "coffee"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("onnx-models")
    return {
        "blip": build_tiny_blip(root / "blip", seed=3),
        "git": build_tiny_git(root / "git", seed=3),
        "open_clip": build_tiny_open_clip(root / "open-clip"),
        "st": build_tiny_sentence_transformer(root / "st"),
        "cache": root / "cache",
    }


@pytest.fixture(scope="module")
def images(photo_dir: Path) -> list:
    from PIL import Image

    return [Image.open(p).convert("RGB") for p in sorted(photo_dir.glob("*.jpg"))]


def _clip(models: dict[str, Path], **kwargs: object) -> OpenClipModel:
    return OpenClipModel(model=str(models["open_clip"]), pretrained=None, cache_dir=models["cache"], **kwargs)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_open_clip_onnx_vectors_match_torch(models: dict[str, Path], images: list) -> None:
    torch_model = _clip(models, runtime="torch")
    onnx_model = _clip(models, runtime="onnx")
    for batch in (images[:1], images):  # one export, a dynamic batch axis
        ref, got = torch_model.embed_images(batch), onnx_model.embed_images(batch)
        assert got.shape == ref.shape and got.dtype == np.float32
        assert _cosines(ref, got).min() >= 0.9999
    assert _cosines(torch_model.embed_texts(TEXTS), onnx_model.embed_texts(TEXTS)).min() >= 0.9999
    assert onnx_model.runtime == "onnx" and torch_model.runtime == "torch"
    assert onnx_model._model is None  # the torch weights are freed once ONNX runs
    exports = sorted(p.name for p in (models["cache"] / "onnx").glob("open-clip-*.onnx"))
    assert [n.split("-")[2] for n in exports] == ["image", "text"]
    assert len({n.rsplit("-", 1)[1] for n in exports}) == 1  # one key: the weights


def test_transformers_clip_image_tower_in_onnx(models: dict[str, Path], tmp_path: Path, images: list) -> None:
    from imgctx._backends.clip import HfClipModel
    from imgctx.testing import build_tiny_clip

    folder = build_tiny_clip(tmp_path / "hf-clip")
    ref = HfClipModel(model=str(folder), runtime="torch")
    onnx_model = HfClipModel(model=str(folder), runtime="onnx", cache_dir=tmp_path / "cache")
    assert _cosines(ref.embed_images(images), onnx_model.embed_images(images)).min() >= 0.9999
    assert onnx_model.runtime == "onnx" and set(onnx_model.export_onnx()) == {"image"}
    np.testing.assert_allclose(onnx_model.embed_texts(TEXTS), ref.embed_texts(TEXTS), atol=1e-6)  # torch


def test_exports_are_reused_and_keyed_by_the_weights(models: dict[str, Path], tmp_path: Path, images: list) -> None:
    _clip(models, runtime="onnx").load()  # exported by now (or by the test above)
    files = {p: p.stat().st_mtime_ns for p in (models["cache"] / "onnx").glob("open-clip-*.onnx")}
    again = _clip(models)  # runtime auto: the export exists, so ONNX
    again.load()
    assert again.runtime == "onnx"
    assert {p: p.stat().st_mtime_ns for p in files} == files  # reused, not rewritten
    # Other weights under the same folder name: no export of theirs, so 'auto' stays on torch
    other = build_tiny_open_clip(tmp_path / "other" / models["open_clip"].name, seed=1)
    fresh = OpenClipModel(model=str(other), pretrained=None, cache_dir=models["cache"])
    fresh.load()
    assert fresh.name == again.name and fresh.runtime == "torch"
    assert not np.allclose(fresh.embed_images(images[:1]), again.embed_images(images[:1]), atol=1e-3)
    # ... and no cache folder at all: auto is torch, onnx is a clear error
    no_cache = OpenClipModel(model=str(models["open_clip"]), pretrained=None, cache_dir=None)
    no_cache.load()
    assert no_cache.runtime == "torch"
    with pytest.raises(ConfigurationError, match="IMGCTX_CACHE_DIR"):
        OpenClipModel(model=str(models["open_clip"]), pretrained=None, cache_dir=None, runtime="onnx").load()


def test_auto_without_an_export_runs_torch_and_exports_nothing(models: dict[str, Path], tmp_path: Path) -> None:
    model = OpenClipModel(model=str(models["open_clip"]), pretrained=None, cache_dir=tmp_path / "empty")
    model.embed_texts(["a dog"])
    assert model.runtime == "torch" and not (tmp_path / "empty" / "onnx").exists()
    paths = model.export_onnx()  # what `imgctx models export` calls
    assert set(paths) == {"image", "text"} and all(p.is_file() for p in paths.values())
    assert model.runtime == "torch"  # the running model keeps its runtime; the next load uses ONNX


def test_int8_image_tower_is_optional_and_close(models: dict[str, Path], images: list) -> None:
    ref = _clip(models, runtime="torch").embed_images(images)
    q = _clip(models, runtime="onnx", int8=True)
    got = q.embed_images(images)
    assert q.runtime == "onnx" and q._onnx is not None and q._onnx["image"].path.name.endswith("-int8-7bit.onnx")
    assert q._onnx["text"].path.name.endswith(".onnx") and "int8" not in q._onnx["text"].path.name
    cos = _cosines(ref, got)
    # measured, not exact: with 7-bit weights the tiny model's int8 vectors lie at cosines of
    # about 0.9998; with full 8-bit weights they fell to 0.980 on an AVX2 CPU (no VNNI), where
    # ONNX Runtime's u8 x s8 products saturate
    assert cos.min() >= 0.999, cos
    assert not np.array_equal(ref, got)


def test_blip_onnx_encoder_and_decoder_give_identical_greedy_tokens(models: dict[str, Path], images: list) -> None:
    import torch
    from transformers import BlipForConditionalGeneration, BlipProcessor

    onnx_blip = BlipCaptioner(model=str(models["blip"]), runtime="onnx", cache_dir=models["cache"], max_length=12)
    captions = onnx_blip.caption(images)
    assert onnx_blip.runtime == "onnx" and onnx_blip.decoding() == (1, 12)
    assert onnx_blip._onnx is not None and set(onnx_blip._onnx) == {"vision", "decoder-start", "decoder-step"}
    assert onnx_blip.onnx_greedy_supported()
    processor = BlipProcessor.from_pretrained(models["blip"])
    model = BlipForConditionalGeneration.from_pretrained(models["blip"]).eval()
    pixels = processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        ref_tokens = model.generate(pixel_values=pixels, max_new_tokens=12, num_beams=1)
        ref_embeds = model.vision_model(pixel_values=pixels)[0].numpy()
        embeds = onnx_blip._onnx["vision"](pixels.numpy())
        torch_decoder = onnx_blip._decode(torch.from_numpy(embeds), max_new_tokens=12, num_beams=1)
    onnx_decoder = onnx_blip._greedy_onnx(embeds, 12)
    assert onnx_decoder.tolist() == ref_tokens.tolist()  # token for token, ONNX encoder and decoder
    assert torch_decoder.tolist() == ref_tokens.tolist()  # the torch decoder on the ONNX encoder's output
    for n in (1, 3):  # other lengths and batch sizes than the export's examples
        assert onnx_blip._greedy_onnx(embeds[:n], 5).tolist() == ref_tokens[:n, :6].tolist()
    flat = (ref_embeds.reshape(len(images), -1), embeds.reshape(len(images), -1))
    assert _cosines(*flat).min() >= 0.9999
    expected = [" ".join(t.split()) for t in processor.batch_decode(ref_tokens, skip_special_tokens=True)]
    assert captions == expected and all(captions)
    torch_blip = BlipCaptioner(model=str(models["blip"]), runtime="torch", cache_dir=models["cache"], max_length=12)
    assert torch_blip.caption(images) == captions


def test_blip_onnx_greedy_stops_at_the_end_token_and_pads_like_generate(models: dict[str, Path], images: list) -> None:
    """A decoder that ends captions early (its end token made likely) and a minimum length:
    the ONNX loop must stop, pad and hold back the end token exactly as ``generate`` does."""
    import torch
    from transformers import BlipForConditionalGeneration, BlipProcessor

    onnx_blip = BlipCaptioner(model=str(models["blip"]), runtime="onnx", cache_dir=models["cache"], max_length=12)
    onnx_blip.load()
    model, processor = onnx_blip._model, BlipProcessor.from_pretrained(models["blip"])
    eos = model.config.text_config.sep_token_id
    pixels = processor(images=images, return_tensors="pt")["pixel_values"]
    ref_model = BlipForConditionalGeneration.from_pretrained(models["blip"]).eval()
    with torch.no_grad():  # the same bias on the end token in both copies of the weights
        for m in (model, ref_model):
            m.text_decoder.cls.predictions.bias[eos] += 4.0
    onnx_blip._onnx = None
    onnx_blip._towers = onnx_blip._onnx_towers()  # other weights: a new export key
    onnx_blip._onnx = onnx_blip._towers.sessions()
    for min_length in (0, 4):
        ref_model.text_decoder.generation_config.min_length = min_length
        model.text_decoder.generation_config.min_length = min_length
        with torch.inference_mode():
            ref = ref_model.generate(pixel_values=pixels, max_new_tokens=12, num_beams=1)
        got = onnx_blip._greedy_onnx(onnx_blip._onnx["vision"](pixels.numpy()), 12)
        assert got.tolist() == ref.tolist()
        ends = [row.index(eos) if eos in row else None for row in ref.tolist()]
        assert any(e is not None and e < 12 for e in ends)  # some captions did end early
        if min_length:
            assert all(e is None or e >= min_length - 1 for e in ends)
    model.text_decoder.generation_config.repetition_penalty = 1.3  # not done by the ONNX loop: torch decodes
    assert not onnx_blip.onnx_greedy_supported()
    assert onnx_blip.caption(images[:2]) == [" ".join(t.split()) for t in processor.batch_decode(
        ref_model.generate(pixel_values=pixels[:2], max_new_tokens=12, num_beams=1, repetition_penalty=1.3),
        skip_special_tokens=True)]


def test_git_onnx_graphs_give_the_tokens_of_generate(models: dict[str, Path], images: list) -> None:
    import torch
    from transformers import AutoProcessor, GitForCausalLM

    onnx_git = GitCaptioner(model=str(models["git"]), runtime="onnx", cache_dir=models["cache"], max_length=12)
    captions = onnx_git.caption(images)
    assert onnx_git.runtime == "onnx" and onnx_git.decoding() == (1, 12) and onnx_git.onnx_greedy_supported()
    assert onnx_git._onnx is not None and set(onnx_git._onnx) == {"vision", "decoder-start", "decoder-step"}
    processor = AutoProcessor.from_pretrained(models["git"])
    model = GitForCausalLM.from_pretrained(models["git"]).eval()
    pixels = processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        ref = model.generate(pixel_values=pixels, max_new_tokens=12, num_beams=1)
        ref_embeds = model.git.visual_projection(model.git.image_encoder(pixels).last_hidden_state).numpy()
    assert len({tuple(row) for row in ref.tolist()}) > 1  # the captions depend on the picture
    assert onnx_git._greedy_onnx(pixels.numpy(), 12).tolist() == ref.tolist()  # token for token
    for n in (1, 3):  # other lengths and batch sizes than the export's examples
        assert onnx_git._greedy_onnx(pixels[:n].numpy(), 5).tolist() == ref[:n, :6].tolist()
    embeds = onnx_git._onnx["vision"](pixels.numpy())
    assert _cosines(ref_embeds.reshape(len(images), -1), embeds.reshape(len(images), -1)).min() >= 0.9999
    expected = [" ".join(t.split()) for t in processor.batch_decode(ref, skip_special_tokens=True)]
    assert captions == expected and all(captions)
    torch_git = GitCaptioner(model=str(models["git"]), runtime="torch", max_length=12)
    assert torch_git.caption(images) == captions and torch_git.runtime == "torch"


def test_git_onnx_greedy_stops_like_generate_and_leaves_beams_to_torch(models: dict[str, Path], images: list) -> None:
    """An end token made likely and a minimum length: the ONNX loop stops, pads and holds the end
    back exactly as ``generate`` does; beam search and a repetition penalty run in torch."""
    import torch
    from transformers import AutoProcessor, GitForCausalLM

    onnx_git = GitCaptioner(model=str(models["git"]), runtime="onnx", cache_dir=models["cache"], max_length=12)
    onnx_git.load()
    model, processor = onnx_git._model, AutoProcessor.from_pretrained(models["git"])
    eos = model.config.eos_token_id
    pixels = processor(images=images, return_tensors="pt")["pixel_values"]
    ref_model = GitForCausalLM.from_pretrained(models["git"]).eval()
    with torch.no_grad():  # the same bias on the end token in both copies of the weights
        for m in (model, ref_model):
            m.output.bias[eos] += 3.0
    onnx_git._onnx = None
    onnx_git._towers = onnx_git._onnx_towers()  # other weights: a new export key
    onnx_git._onnx = onnx_git._towers.sessions()
    for min_length in (0, 4):
        ref_model.generation_config.min_length = min_length
        model.generation_config.min_length = min_length
        with torch.inference_mode():
            ref = ref_model.generate(pixel_values=pixels, max_new_tokens=12, num_beams=1)
        assert onnx_git._greedy_onnx(pixels.numpy(), 12).tolist() == ref.tolist()
        ends = [row.index(eos) if eos in row else None for row in ref.tolist()]
        assert any(e is not None and e < 12 for e in ends)  # some captions did end early
        if min_length:
            assert all(e is None or e >= min_length - 1 for e in ends)

    def texts(tokens: object) -> list[str]:
        return [" ".join(t.split()) for t in processor.batch_decode(tokens, skip_special_tokens=True)]

    beams = GitCaptioner(model=str(models["git"]), runtime="onnx", cache_dir=models["cache"], max_length=8, num_beams=2)
    with torch.inference_mode():
        plain = GitForCausalLM.from_pretrained(models["git"]).eval()
        assert beams.caption(images[:2]) == texts(plain.generate(pixel_values=pixels[:2], max_new_tokens=8, num_beams=2))
    model.generation_config.repetition_penalty = 1.3  # not done by the ONNX loop: torch decodes
    assert not onnx_git.onnx_greedy_supported()
    with torch.inference_mode():
        ref = ref_model.generate(pixel_values=pixels[:2], max_new_tokens=12, num_beams=1, repetition_penalty=1.3)
    assert onnx_git.caption(images[:2]) == texts(ref)
    model.generation_config.repetition_penalty = 1.0
    assert onnx_git.onnx_greedy_supported()
    model.generation_config.eos_token_id = [eos, eos + 1]  # several end tokens: generate in torch
    assert not onnx_git.onnx_greedy_supported()


def test_git_is_a_captioner_with_its_own_settings(models: dict[str, Path], tmp_path: Path, photo_dir: Path) -> None:
    settings = _standard(tmp_path / "db", models, git={"local_model_path": models["git"], "max_length": 6})
    own = settings.plugin(GitSettings)
    assert own.num_beams is None and own.runtime == "auto" and own.source() == str(models["git"])
    assert GitCaptioner(model=str(models["git"])).decoding() == (1, 20)
    chosen = settings.with_overrides(captioner="git")  # IMGCTX_CAPTIONER=git: the CLI and server too
    with Extractor(settings=chosen, store="memory") as ex:
        assert isinstance(ex.components.captioner, GitCaptioner)
        report = ex.process_directory(photo_dir)
        assert report.processed == 6 and report.failed == 0
        assert all(r.caption for r in ex.list())
    with Extractor(settings=chosen, store="memory", captioner="blip") as ex:  # the argument wins
        assert isinstance(ex.components.captioner, BlipCaptioner)
    with Extractor(settings=settings.with_overrides(captioner="none"), store="memory") as ex:
        assert ex.components.captioner is None


def test_blip_decodes_greedily_with_short_captions_on_cpu_by_default(models: dict[str, Path]) -> None:
    settings = settings_for_tests(Path("unused"), preset="standard",
                                  plugin_settings={"blip": {"local_model_path": models["blip"]}})
    own = settings.plugin(BlipSettings)
    assert own.num_beams is None and own.max_length is None and own.runtime == "auto"
    assert BlipCaptioner(model=str(models["blip"])).decoding() == (1, 20)
    assert BlipCaptioner(model=str(models["blip"]), num_beams=3, max_length=30).decoding() == (3, 30)


def test_runtime_rules() -> None:
    assert choose_runtime("auto", "cpu", True, "m") == "onnx"
    assert choose_runtime("auto", "cpu", False, "m") == "torch"
    assert choose_runtime("auto", "cuda", True, "m") == "torch"
    assert choose_runtime("torch", "cpu", True, "m") == "torch"
    assert choose_runtime("onnx", "cpu", False, "m") == "onnx"
    with pytest.raises(ConfigurationError, match="CPU only"):
        choose_runtime("onnx", "cuda", True, "m")
    with pytest.raises(ConfigurationError, match="unknown runtime"):
        choose_runtime("tensorrt", "cpu", True, "m")


def _standard(db: Path, models: dict[str, Path], **plugins: dict[str, object]) -> object:
    groups: dict[str, dict[str, object]] = {
        "blip": {"local_model_path": models["blip"], "max_length": 6},
        "clip": {"local_model_path": models["open_clip"]}, "sentence": {"model": str(models["st"])},
        "tag": {"threshold": 0.003},
    }
    for group, values in plugins.items():
        groups[group] = {**groups.get(group, {}), **values}
    return settings_for_tests(db, preset="standard", cache_dir=models["cache"], plugin_settings=groups)


def test_captions_switched_off_search_still_works(models: dict[str, Path], tmp_path: Path, photo_dir: Path) -> None:
    with Extractor(settings=_standard(tmp_path / "db", models), store="memory", captioner=None) as ex:
        assert ex.components.captioner is None
        report = ex.process_directory(photo_dir)
        assert report.processed == 6 and report.failed == 0
        records = ex.list()
        assert all(r.caption == "" for r in records)
        assert any(r.objects for r in records)  # tags still come from CLIP
        hits = ex.search("a rocket", limit=3)
        assert len(hits) == 3 and all(set(h.scores) == {"image", "text"} for h in hits)
    with Extractor(settings=_standard(tmp_path / "db2", models), store="memory") as ex:
        assert isinstance(ex.components.captioner, BlipCaptioner)  # left out: the preset's


def test_onnx_and_torch_index_the_same(models: dict[str, Path], tmp_path: Path, photo_dir: Path) -> None:
    results = {}
    for runtime in ("torch", "onnx"):
        settings = _standard(tmp_path / runtime, models, clip={"runtime": runtime}, blip={"runtime": runtime})
        with Extractor(settings=settings, store="memory") as ex:
            ex.process_directory(photo_dir)
            assert ex.components.image_embedder.runtime == runtime == ex.components.captioner.runtime
            records = {r.filename: (r.caption, r.objects) for r in ex.list()}
            results[runtime] = (records, [h.record.filename for h in ex.search("a cat on a sofa", limit=6)])
    assert results["onnx"] == results["torch"]


def test_cli_models_export_writes_once(models: dict[str, Path], tmp_path: Path) -> None:
    cache = models["cache"]  # exports made by other tests are reused; missing ones made now
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGCTX_")}
    env.update(IMGCTX_PRESET="standard", IMGCTX_DB_PATH=str(tmp_path / "db"), IMGCTX_CACHE_DIR=str(cache),
               IMGCTX_CLIP_LOCAL_MODEL_PATH=str(models["open_clip"]), IMGCTX_BLIP_LOCAL_MODEL_PATH=str(models["blip"]),
               IMGCTX_SENTENCE_MODEL=str(models["st"]))
    runner = CliRunner()
    first = runner.invoke(cli, ["models", "export", "--json"], env=env, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout)
    assert set(data["image_embedder"]["exported"]) == {"image", "text"}
    assert set(data["captioner"]["exported"]) == {"vision", "decoder-start", "decoder-step"}
    assert data["text_embedder"]["exported"] == {}  # sentence-transformers stays in torch
    assert data["tagger"] == data["image_embedder"]
    paths = [Path(p) for item in data.values() for p in item["exported"].values()]
    assert paths and all(p.is_file() and p.parent == cache / "onnx" for p in paths)
    stamps = {p: p.stat().st_mtime_ns for p in paths}
    again = runner.invoke(cli, ["models", "export"], env=env, catch_exceptions=False)
    assert again.exit_code == 0 and "image_embedder" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in paths} == stamps
    status = runner.invoke(cli, ["models", "status"], env=env, catch_exceptions=False)
    assert status.exit_code == 0

