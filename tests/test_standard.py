"""The standard preset's backends (BLIP, open_clip, transformers CLIP, sentence-transformers),
with tiny models that the tests build on disk with the real classes and load through the same
code path as published weights. Nothing is downloaded: tests that name hub models run with
``use_local_files_only`` or ``HF_HUB_OFFLINE=1`` and an empty cache."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("open_clip")
pytest.importorskip("sentence_transformers")

from imgctx import Extractor, Settings  # noqa: E402
from imgctx._backends.blip import BlipCaptioner  # noqa: E402
from imgctx._backends.clip import ClipSettings, HfClipModel, OpenClipModel, open_clip_factory  # noqa: E402
from imgctx._backends.vocabulary import load_vocabulary  # noqa: E402
from imgctx._errors import ModelLoadError  # noqa: E402
from imgctx._presets import PRESETS  # noqa: E402
from imgctx._search import calibrate  # noqa: E402
from imgctx.testing import (  # noqa: E402
    build_tiny_blip,
    build_tiny_clip,
    build_tiny_open_clip,
    build_tiny_sentence_transformer,
    settings_for_tests,
)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-models")
    return {
        "blip": build_tiny_blip(root / "blip"),
        "clip": build_tiny_clip(root / "clip"),
        "open_clip": build_tiny_open_clip(root / "open-clip"),
        "st": build_tiny_sentence_transformer(root / "st"),
    }


def _settings(db: Path, models: dict[str, Path], clip: str = "open_clip",
              plugins: dict[str, dict[str, object]] | None = None, **changes: object) -> Settings:
    """The standard preset on the tiny models; ``plugins`` adds to the plugin settings groups."""
    groups: dict[str, dict[str, object]] = {
        "blip": {"local_model_path": models["blip"], "max_length": 6, "num_beams": 2},
        "clip": {"local_model_path": models[clip]}, "sentence": {"model": str(models["st"])},
    }
    for group, values in (plugins or {}).items():
        groups[group] = {**groups.get(group, {}), **values}
    return settings_for_tests(db, preset="standard", cache_dir=db / "cache", plugin_settings=groups, **changes)


@pytest.fixture(scope="module")
def standard_index(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path], photo_dir: Path):  # noqa: ANN201
    # The random tiny CLIP is nearly uniform over the 375 nouns (about 0.0027 each): a threshold
    # just above chance makes it tag something, so the objects path is exercised end to end.
    ex = Extractor(settings=_settings(tmp_path_factory.mktemp("std-db"), tiny_models, plugins={"tag": {"threshold": 0.003}}))
    report = ex.process_directory(photo_dir)
    assert report.processed == 6 and report.failed == 0, report.failed_files
    yield ex
    ex.close()


def _images(photo_dir: Path, names: tuple[str, ...] = ("chelsea", "coffee", "rocket")) -> list:  # noqa: ANN001
    from PIL import Image

    return [Image.open(photo_dir / f"{n}.jpg").convert("RGB") for n in names]


# -- the preset -----------------------------------------------------------------------------------


def test_standard_preset_names_its_plugins_and_loads_nothing_up_front(tmp_path: Path, tiny_models) -> None:  # noqa: ANN001
    p = PRESETS["standard"]
    assert (p.captioner, p.image_embedder, p.text_embedder, p.taggers) == (
        "blip", "open-clip", "sentence-transformers", ("clip-zero-shot",))
    with Extractor(settings=_settings(tmp_path / "db", tiny_models), store="memory") as ex:
        c = ex.components
        assert isinstance(c.captioner, BlipCaptioner) and isinstance(c.image_embedder, OpenClipModel)
        assert c.taggers == [c.image_embedder]  # one CLIP model fills both roles
        assert c.image_embedder.cross_modal
        assert not any(s.loaded for s in ex.models.status().values())
        timings = ex.models.preload()
        assert set(timings) == {"captioner", "image_embedder", "text_embedder", "tagger", "total",
                                "annotator", "annotator_1", "annotator_2", "annotator_3"}  # the photo annotators
        status = ex.models.status()
        assert all(s.loaded and s.device == "cpu" for s in status.values())
        assert status["captioner"].load_time > 0 and status["image_embedder"].load_time > 0
        assert timings["tagger"] == 0.0  # shared with the image embedder, already loaded
        assert status["image_embedder"].name == "open-clip:open-clip"
        assert c.image_embedder.dim == 16 and c.text_embedder.dim == 32


# -- end to end -----------------------------------------------------------------------------------


def test_captions_are_blip_generate_output(standard_index: Extractor, tiny_models, photo_dir: Path) -> None:  # noqa: ANN001
    import torch
    from transformers import BlipForConditionalGeneration, BlipProcessor

    processor = BlipProcessor.from_pretrained(tiny_models["blip"])
    model = BlipForConditionalGeneration.from_pretrained(tiny_models["blip"]).eval()
    images = _images(photo_dir, ("chelsea", "rocket"))
    with torch.inference_mode():
        out = model.generate(**processor(images=images, return_tensors="pt"), max_new_tokens=6, num_beams=2)
    expected = [" ".join(t.split()) for t in processor.batch_decode(out, skip_special_tokens=True)]
    records = {r.filename: r for r in standard_index.list()}
    assert [records["chelsea.jpg"].caption, records["rocket.jpg"].caption] == expected
    assert all(e for e in expected)


def test_objects_come_from_the_vocabulary_and_filter(standard_index: Extractor) -> None:
    labels = {e.noun for e in load_vocabulary()} | {p for e in load_vocabulary() for p in e.parents}
    labels |= {"person", "people", "face"}  # the people annotator's tags
    records = standard_index.list()
    assert all(set(r.objects) <= labels for r in records)
    tagged = [r for r in records if r.objects]
    assert tagged, "just above chance, the tiny model tags something"
    label = tagged[0].objects[0]
    assert {r.id for r in standard_index.list(objects=label)} == {r.id for r in records if label in r.objects}


def test_text_search_fuses_calibrated_clip_and_text_scores(standard_index: Extractor) -> None:
    ex = standard_index
    hits = ex.search("a cat on a sofa", limit=6)
    assert len(hits) == 6
    clip, text = ex.components.image_embedder, ex.components.text_embedder
    q_image = clip.embed_texts(["a cat on a sofa"])[0]
    q_text = text.embed_texts(["a cat on a sofa"])[0]
    image_vecs = ex.store.vectors("image", [h.record.id for h in hits])
    text_vecs = ex.store.vectors("text", [h.record.id for h in hits])
    for h in hits:
        assert set(h.scores) == {"image", "text"}
        cos_image = float(image_vecs[h.record.id] @ q_image)
        assert h.scores["image"] == pytest.approx(calibrate(cos_image, clip.text_score_range), abs=1e-5)
        assert h.scores["text"] == pytest.approx(min(1.0, max(0.0, float(text_vecs[h.record.id] @ q_text))), abs=1e-5)
        assert h.score == pytest.approx((h.scores["image"] + h.scores["text"]) / 2, abs=1e-6)
        assert 0.0 <= h.score <= 1.0
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    cut = hits[2].score
    assert all(h.score >= cut for h in ex.search("a cat on a sofa", min_score=cut))


def test_image_search_finds_the_same_photo_first(standard_index: Extractor, photo_dir: Path) -> None:
    img = _images(photo_dir, ("coffee",))[0]
    hits = standard_index.search_image(img, limit=3)
    assert hits[0].record.filename == "coffee.jpg"
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert set(hits[0].scores) == {"image"}


def test_calibration_maps_the_clip_range_onto_0_1() -> None:
    assert calibrate(0.15, (0.15, 0.35)) == 0.0
    assert calibrate(0.25, (0.15, 0.35)) == pytest.approx(0.5)
    assert calibrate(0.5, (0.15, 0.35)) == 1.0
    assert calibrate(-0.2) == 0.0 and calibrate(0.7) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="score_range"):
        Settings.from_values(plugin_settings={"clip": {"score_range": (0.3, 0.2)}}).plugin(ClipSettings)


@pytest.mark.parametrize("text", ["0.1,0.3", "[0.1, 0.3]"])
def test_clip_score_range_from_the_environment(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv("IMGCTX_CLIP_SCORE_RANGE", text)
    assert Settings().plugin(ClipSettings).score_range == (0.1, 0.3)


# -- the backends against the libraries they wrap -------------------------------------------------


def test_open_clip_vectors_are_open_clip_outputs(tiny_models, photo_dir: Path) -> None:  # noqa: ANN001
    import open_clip
    import torch

    backend = OpenClipModel(model=str(tiny_models["open_clip"]), pretrained=None)
    images = _images(photo_dir)
    vecs = backend.embed_images(images)
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{tiny_models['open_clip']}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{tiny_models['open_clip']}")
    with torch.inference_mode():
        ref = model.eval().encode_image(torch.stack([preprocess(i) for i in images]))
        ref_text = model.encode_text(tokenizer(["a dog", "a rocket"]))
    ref = torch.nn.functional.normalize(ref, dim=-1).numpy()
    ref_text = torch.nn.functional.normalize(ref_text, dim=-1).numpy()
    assert vecs.shape == (3, 16) and vecs.dtype == np.float32
    np.testing.assert_allclose(vecs, ref, atol=1e-5)
    np.testing.assert_allclose(backend.embed_texts(["a dog", "a rocket"]), ref_text, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert backend.logit_scale == pytest.approx(float(model.logit_scale.exp()))


def test_open_clip_by_architecture_name_and_checkpoint_file(tiny_models, tmp_path: Path, photo_dir: Path) -> None:  # noqa: ANN001
    """The default path: a built-in architecture name plus weights (a file here, a tag there)."""
    import json

    import open_clip

    from imgctx.testing import TINY_OPEN_CLIP_CONFIG

    (tmp_path / "imgctx-tiny-vit.json").write_text(json.dumps(TINY_OPEN_CLIP_CONFIG), encoding="utf-8")
    open_clip.add_model_config(tmp_path / "imgctx-tiny-vit.json")
    ckpt = tiny_models["open_clip"] / "open_clip_pytorch_model.bin"
    by_name = OpenClipModel(model="imgctx-tiny-vit", pretrained=str(ckpt))
    by_folder = OpenClipModel(model=str(tiny_models["open_clip"]), pretrained=None)
    images = _images(photo_dir, ("astronaut",))
    np.testing.assert_allclose(by_name.embed_images(images), by_folder.embed_images(images), atol=1e-5)
    assert by_name.name == f"open-clip:imgctx-tiny-vit/{ckpt}"


def test_transformers_clip_from_the_contract_folder(tmp_path: Path, tiny_models, photo_dir: Path) -> None:  # noqa: ANN001
    """LOCAL_CLIP_MODEL_PATH pointing at a transformers CLIP folder selects the `clip` backend."""
    import torch
    from transformers import CLIPModel, CLIPProcessor

    settings = _settings(tmp_path / "db", tiny_models, clip="clip")
    backend = open_clip_factory(settings)
    assert isinstance(backend, HfClipModel) and backend.name == "clip:clip"
    images = _images(photo_dir)
    model = CLIPModel.from_pretrained(tiny_models["clip"]).eval()
    processor = CLIPProcessor.from_pretrained(tiny_models["clip"])
    with torch.inference_mode():
        ref = model.get_image_features(**processor(images=images, return_tensors="pt"))
    ref = getattr(ref, "pooler_output", ref)
    np.testing.assert_allclose(backend.embed_images(images), torch.nn.functional.normalize(ref, dim=-1).numpy(), atol=1e-5)
    with Extractor(settings=settings, store="memory") as ex:
        report = ex.process_many([photo_dir / "chelsea.jpg", photo_dir / "rocket.jpg"])
        assert report.processed == 2 and report.failed == 0
        assert ex.components.image_embedder.name == "clip:clip"
        hits = ex.search("a rocket")
        assert len(hits) == 2 and all(0 <= h.score <= 1 for h in hits)
    with Extractor(settings=settings, store="memory", image_embedder="clip", tagger="clip") as ex:
        assert isinstance(ex.components.image_embedder, HfClipModel)
        assert ex.components.taggers == [ex.components.image_embedder]


def test_batches_give_the_same_outputs_as_single_images(tiny_models, photo_dir: Path) -> None:  # noqa: ANN001
    images = _images(photo_dir)
    clip = OpenClipModel(model=str(tiny_models["open_clip"]), pretrained=None)
    batch = clip.embed_images(images)
    single = np.concatenate([clip.embed_images([im]) for im in images])
    np.testing.assert_allclose(batch, single, atol=1e-5)
    blip = BlipCaptioner(model=str(tiny_models["blip"]), max_length=5, num_beams=1)
    captions = blip.caption(images)
    assert captions == [blip.caption([im])[0] for im in images]
    pairs = BlipCaptioner(model=str(tiny_models["blip"]), max_length=5, num_beams=1, micro_batch=2)
    assert pairs.caption(images) == captions  # three images in generate calls of 2 and 1


def test_concurrent_first_use_loads_once(tiny_models, photo_dir: Path) -> None:  # noqa: ANN001
    clip = OpenClipModel(model=str(tiny_models["open_clip"]), pretrained=None)
    images = _images(photo_dir, ("coffee",))
    models, results, errors = [], [], []

    def work() -> None:
        try:
            results.append(clip.embed_images(images))
            models.append(id(clip._model))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(models)) == 1
    assert all(np.allclose(r, results[0], atol=1e-6) for r in results)
    assert clip.loaded and clip.load_time is not None


# -- zero-shot calibration ------------------------------------------------------------------------


def _controlled_tagger(threshold: float = 0.1, max_tags: int = 5) -> tuple[OpenClipModel, list[str]]:
    """An open_clip backend whose prompt vectors are the unit axes: the image vector then sets
    each noun's cosine directly, so the probabilities are known."""
    tagger = OpenClipModel(threshold=threshold, max_tags=max_tags)
    nouns = [e.noun for e in load_vocabulary()]
    tagger._prompts = np.eye(len(nouns), dtype=np.float32)
    tagger.logit_scale = 100.0
    return tagger, nouns


def _image_vector(nouns: list[str], weights: dict[str, float]) -> np.ndarray:
    v = np.zeros((1, len(nouns)), dtype=np.float32)
    for noun, w in weights.items():
        v[0, nouns.index(noun)] = w
    return v


def test_zero_shot_tags_softmax_threshold_and_parents() -> None:
    tagger, nouns = _controlled_tagger()
    # cosines 0.30 (kitten), 0.29 (cat), 0.27 (dog), 0 for the rest
    vec = _image_vector(nouns, {"kitten": 0.30, "cat": 0.29, "dog": 0.27})
    probs = tagger.probabilities(vec)[0]
    logits = 100 * vec[0]
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(probs, expected, rtol=1e-5)
    tags = tagger.tags_from_vectors(vec)[0]
    confident = {t.label: t for t in tags if t.confident}
    p = dict(zip(nouns, probs, strict=True))
    assert p["kitten"] > 0.5 and 0.1 < p["cat"] < 0.5 and p["dog"] < 0.1
    # a parent scores its group: cat = p(cat) + p(kitten); pet and animal add the dog too
    assert confident["cat"].score == pytest.approx(p["cat"] + p["kitten"], rel=1e-5) and confident["cat"].coarse
    assert confident["animal"].score == pytest.approx(sum(p[n] for n in nouns if n in {
        e.noun for e in load_vocabulary() if "animal" in e.parents}), rel=1e-5)
    assert "dog" not in confident and not confident["kitten"].coarse
    labels = [t.label for t in tags if t.confident]
    assert labels.index("kitten") < labels.index("cat") < labels.index("pet") < labels.index("animal")
    candidates = [t for t in tags if not t.confident]
    assert candidates and candidates[0].label == "dog" and len(candidates) == 5


def test_zero_shot_nothing_above_threshold_gives_no_objects() -> None:
    tagger, nouns = _controlled_tagger()
    tags = tagger.tags_from_vectors(np.zeros((1, len(nouns)), dtype=np.float32))[0]  # uniform
    assert not [t for t in tags if t.confident] and len(tags) == 5
    few, _ = _controlled_tagger(threshold=0.01, max_tags=2)
    vec = _image_vector(nouns, {"pizza": 0.3, "sushi": 0.3, "salad": 0.3, "car": 0.3})
    leaves = [t for t in few.tags_from_vectors(vec)[0] if t.confident and not t.coarse]
    assert len(leaves) == 2


def test_prompt_vectors_are_cached_on_disk_per_weights(tmp_path: Path, tiny_models) -> None:  # noqa: ANN001
    cache = tmp_path / "cache"
    n = len(load_vocabulary())

    def counting(model: OpenClipModel) -> list[int]:
        sizes: list[int] = []
        embed = model.embed_texts

        def spy(texts):  # noqa: ANN001, ANN202
            sizes.append(len(texts))
            return embed(texts)

        model.embed_texts = spy  # type: ignore[method-assign]
        return sizes

    first = OpenClipModel(model=str(tiny_models["open_clip"]), pretrained=None, cache_dir=cache)
    first_calls = counting(first)
    vectors = first.prompt_vectors()
    assert vectors.shape == (n, 16) and sum(first_calls) == n + 1  # the probe, then every prompt
    assert len(list((cache / "zero-shot-prompts").glob("*.npy"))) == 1
    nouns = [e.noun for e in load_vocabulary()[:3]]
    expected = first.embed_texts([f"a photo of {'an' if w[0] in 'aeiou' else 'a'} {w}." for w in nouns])
    np.testing.assert_allclose(vectors[:3], expected, atol=1e-5)

    again = OpenClipModel(model=str(tiny_models["open_clip"]), pretrained=None, cache_dir=cache)
    again_calls = counting(again)
    np.testing.assert_array_equal(again.prompt_vectors(), vectors)
    assert again_calls == [1]  # only the probe that checks the weights

    other_weights = build_tiny_open_clip(tmp_path / "other" / tiny_models["open_clip"].name, seed=1)
    other = OpenClipModel(model=str(other_weights), pretrained=None, cache_dir=cache)
    assert other.name == first.name  # same folder name, other weights: not the cached vectors
    assert not np.allclose(other.prompt_vectors(), vectors)
    assert len(list((cache / "zero-shot-prompts").glob("*.npy"))) == 2


# -- no hub, no local copy ------------------------------------------------------------------------


def test_missing_weights_fail_before_any_image_is_read(tmp_path: Path, photo_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import imgctx._pipeline

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("an image was read before the models were checked")

    monkeypatch.setattr(imgctx._pipeline, "probe_file", never)
    settings = settings_for_tests(tmp_path / "db", preset="standard", plugin_settings={
        "hub": {"local_files_only": True}, "clip": {"model": "ViT-B-32", "pretrained": "laion2b_s34b_b79k"}})
    with Extractor(settings=settings, store="memory") as ex:
        with pytest.raises(ModelLoadError) as info:
            ex.process_directory(photo_dir)
    message = str(info.value)
    assert "IMGCTX_LOCAL_CLIP_MODEL_PATH" in message and "'offline' preset" in message
    assert "not in the local model cache" in message


def test_missing_blip_names_its_setting(tmp_path: Path, tiny_models, photo_dir: Path) -> None:  # noqa: ANN001
    settings = _settings(tmp_path / "db", tiny_models, plugins={
        "hub": {"local_files_only": True},
        "blip": {"local_model_path": None, "model": "Salesforce/blip-image-captioning-base"}})
    with Extractor(settings=settings, store="memory") as ex:
        with pytest.raises(ModelLoadError, match="IMGCTX_LOCAL_BLIP_MODEL_PATH.*'offline' preset"):
            ex.process(photo_dir / "chelsea.jpg")
        assert ex.count() == 0


def test_cli_without_hub_prints_one_line_and_exits_1(tmp_path: Path, photo_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMGCTX_", "HF_"))}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf-home"), IMGCTX_DB_PATH=str(tmp_path / "db"),
               PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    for k in ("DEVICE", "DB_PATH", "LOCAL_BLIP_MODEL_PATH", "LOCAL_CLIP_MODEL_PATH", "USE_LOCAL_FILES_ONLY"):
        env.pop(k, None)
    proc = subprocess.run([sys.executable, "-m", "imgctx", "--preset", "standard", "index", str(photo_dir)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    error = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1
    assert "IMGCTX_LOCAL_CLIP_MODEL_PATH" in error[0] and "--preset offline" in error[0]
