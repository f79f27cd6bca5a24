"""Early-media screening on the labelled corpus: espeak-ng announcements, synthetic tones.

The corpus is built once for the module (tests/corpus/build.py, about ten
seconds); each item is fed to a fresh classifier in 20 ms chunks.
"""

from __future__ import annotations

import json
import statistics
import sys
import wave
from collections import Counter
from pathlib import Path

import pytest
from support import peer_missing

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "corpus"))

import build as corpus

from dialer.media.screening import (
    EarlyMediaClassifier,
    ScreenClass,
    Verdict,
    outcome_for,
)

pytestmark = pytest.mark.integration

Screened = list[tuple[corpus.CorpusItem, Verdict]]
KEEP_RINGING = (ScreenClass.RINGBACK, ScreenClass.SILENCE)


@pytest.fixture(scope="module")
def items() -> list[corpus.CorpusItem]:
    missing = corpus.missing_tools()
    if missing:
        peer_missing(f"the screening corpus needs espeak-ng and sox; missing: {', '.join(missing)}")
    return corpus.build_corpus()


def screen(item: corpus.CorpusItem) -> Verdict:
    classifier = EarlyMediaClassifier()
    step = 2 * corpus.RATE // 50
    for offset in range(0, len(item.pcm), step):
        verdict = classifier.feed(item.pcm[offset : offset + step], offset / 2 / corpus.RATE)
        if verdict is not None:
            return verdict
    raise AssertionError(f"{item.name}: {item.seconds:.1f} s of audio and no verdict")


@pytest.fixture(scope="module")
def screened(items: list[corpus.CorpusItem]) -> Screened:
    return [(item, screen(item)) for item in items]


def of_class(screened: Screened, label: ScreenClass) -> Screened:
    return [(item, verdict) for item, verdict in screened if item.label is label]


def test_the_corpus_covers_every_class_and_outlasts_the_deadline(
    items: list[corpus.CorpusItem],
) -> None:
    assert 150 <= len(items) <= 300
    counts = Counter(item.label for item in items)
    assert set(counts) == set(ScreenClass)
    assert len({item.name for item in items}) == len(items)
    assert min(item.seconds for item in items) >= 10.5
    assert all((item.sit is not None) == (item.label is ScreenClass.SIT) for item in items)
    regions = {tag for item in items for tag in item.tags if tag.startswith("region:")}
    assert regions == {"region:cn", "region:eu", "region:na"}
    voices = {tag for item in items for tag in item.tags if tag.startswith("voice:")}
    assert "voice:cmn" in voices and "voice:en-us" in voices


@pytest.mark.parametrize(
    ("label", "required"),
    [
        (ScreenClass.SIT, 0.95),
        (ScreenClass.RINGBACK, 0.95),
        (ScreenClass.SILENCE, 0.95),
        (ScreenClass.ANNOUNCEMENT, 0.90),
    ],
)
def test_per_class_accuracy(screened: Screened, label: ScreenClass, required: float) -> None:
    mine = of_class(screened, label)
    wrong = [(item.name, verdict.kind.value) for item, verdict in mine if verdict.kind is not label]
    assert 1 - len(wrong) / len(mine) >= required, wrong


@pytest.mark.parametrize(
    ("label", "allowed"), [(ScreenClass.SIT, 0.05), (ScreenClass.ANNOUNCEMENT, 0.10)]
)
def test_calls_to_release_are_seldom_taken_for_ringing(
    screened: Screened, label: ScreenClass, allowed: float
) -> None:
    mine = of_class(screened, label)
    kept = [item.name for item, verdict in mine if verdict.kind in KEEP_RINGING]
    assert len(kept) <= allowed * len(mine), kept


def test_outcomes_are_what_the_labels_say(screened: Screened) -> None:
    for label, required in ((ScreenClass.SIT, 0.95), (ScreenClass.ANNOUNCEMENT, 0.90)):
        mine = of_class(screened, label)
        right = sum(outcome_for(verdict) is item.outcome for item, verdict in mine)
        assert right / len(mine) >= required, label


def test_ringing_calls_are_not_released(screened: Screened) -> None:
    """Ringback, silence and the hard negatives (melodies, DTMF, dial/busy tones) keep ringing."""
    ringing = [(item, verdict) for item, verdict in screened if item.outcome is None]
    released = [
        (item.name, verdict.kind.value)
        for item, verdict in ringing
        if outcome_for(verdict) is not None
    ]
    assert len(released) <= 0.05 * len(ringing), released
    negatives = [verdict for item, verdict in ringing if "hard_negative" in item.tags]
    assert negatives and all(outcome_for(verdict) is None for verdict in negatives)


def test_decisions_come_quickly(screened: Screened) -> None:
    def times(label: ScreenClass) -> list[float]:
        return [v.decided_after_s for item, v in of_class(screened, label) if v.kind is label]

    assert max(times(ScreenClass.SIT)) < 1.2  # three ~330 ms segments and 120 ms of the third
    assert statistics.median(times(ScreenClass.ANNOUNCEMENT)) < 2.5
    assert statistics.median(times(ScreenClass.RINGBACK)) < 4.0


def test_speech_synthesis_is_repeatable(items: list[corpus.CorpusItem]) -> None:
    speech = corpus.Speech("cmn", 150, corpus.CHINESE[0])
    assert corpus.speak(speech) == corpus.speak(speech)


def test_the_corpus_is_written_as_wavs_with_labels(
    items: list[corpus.CorpusItem], tmp_path: Path
) -> None:
    chosen = [next(item for item in items if item.label is label) for label in ScreenClass]
    labels = corpus.write_corpus(chosen, tmp_path)
    described = json.loads(labels.read_text(encoding="utf-8"))
    assert [entry["name"] for entry in described] == [item.name for item in chosen]
    for entry, item in zip(described, chosen, strict=True):
        assert entry["label"] == item.label.value
        assert entry["outcome"] == (item.outcome.value if item.outcome else None)
        with wave.open(str(tmp_path / entry["file"]), "rb") as recorded:
            assert (recorded.getframerate(), recorded.getnchannels()) == (corpus.RATE, 1)
            assert recorded.readframes(recorded.getnframes()) == item.pcm
