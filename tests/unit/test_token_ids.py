"""Token ids word by word (:mod:`router_service.featurizers.wordpiece`): the same ids as the
tokenizer's own ``encode`` on every prompt of the shipped datasets, on every pair of ASCII
characters, on special-token literals and non-ASCII text, under truncation, with a full word
cache and from several threads; and a tokenizer of another shape keeps to ``encode``."""

from __future__ import annotations

import json
import string
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from converters.datasets.llmrouter import load_llmrouter
from converters.datasets.routellm import load_routellm
from converters.features import minilm
from router_service.featurizers import wordpiece
from router_service.featurizers.wordpiece import TokenIds

DATA = Path(__file__).resolve().parents[2] / "converters" / "data"


@pytest.fixture(scope="module")
def tokenizer_file() -> Path:
    return minilm.tokenizer_path(minilm.find_weights_dir())


def _token_ids(path: Path, max_length: int) -> TokenIds:
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    return TokenIds(tokenizer, path, max_length)


@pytest.fixture(scope="module")
def prompts() -> list[str]:
    texts = list(load_llmrouter(DATA / "llmrouter").queries)
    for bench in ("mmlu", "gsm8k"):
        texts += load_routellm(DATA / "routellm", bench).queries
    return texts


@pytest.mark.parametrize("max_length", [256, 16])
def test_every_shipped_prompt_gets_the_tokenizers_ids(
    tokenizer_file: Path, prompts: list[str], max_length: int
) -> None:
    ids = _token_ids(tokenizer_file, max_length)
    assert ids.word_path
    wrong = [p for p in prompts if ids.ids(p) != ids.encoded(p)]
    assert not wrong, f"{len(wrong)} of {len(prompts)} differ, e.g. {wrong[0]!r}"
    assert sum(p.isascii() for p in prompts) > 0.9 * len(prompts)  # the word path was exercised


def test_every_pair_of_ascii_characters(tokenizer_file: Path) -> None:
    ids = _token_ids(tokenizer_file, 256)
    chars = [chr(c) for c in range(128)]
    texts = [f"x{a}{b}y {a}Word{b}" for a in chars for b in chars]
    wrong = [t for t in texts if ids.ids(t) != ids.encoded(t)]
    assert not wrong, [repr(t) for t in wrong[:5]]


@pytest.mark.parametrize(
    "text",
    [
        "what does [MASK] stand for in [CLS] x [SEP]?",  # special-token literals
        "[UNK][PAD]",
        "naïve café, 日本語のテキスト, emojis 🎉, Ελληνικά",
        "a" * 101 + " tail",  # longer than WordPiece's 100 characters: [UNK]
        "",
        "   \t\n ",
    ],
)
def test_special_literals_non_ascii_and_edge_cases(tokenizer_file: Path, text: str) -> None:
    ids = _token_ids(tokenizer_file, 256)
    assert ids.ids(text) == ids.encoded(text)


def test_truncation_keeps_the_closing_token(tokenizer_file: Path) -> None:
    ids = _token_ids(tokenizer_file, 8)
    got = ids.ids("one two three four five six seven eight nine ten")
    assert len(got) == 8 and got == ids.encoded("one two three four five six seven eight nine ten")
    assert got[-1] == Tokenizer.from_file(str(tokenizer_file)).token_to_id("[SEP]")


def test_a_full_word_cache_is_cleared_and_ids_stay_right(
    tokenizer_file: Path, prompts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wordpiece, "_CACHE_WORDS", 50)
    ids = _token_ids(tokenizer_file, 256)
    sample = [p for p in prompts[:: max(1, len(prompts) // 500)] if p.isascii()]
    for prompt in sample:
        assert ids.ids(prompt) == ids.encoded(prompt)
        words = set(wordpiece._WORDS.findall(prompt.lower()))
        assert len(ids._pieces) <= max(50, len(words))  # bounded: cleared when it would overflow


def test_threads_share_the_cache_safely(
    tokenizer_file: Path, prompts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wordpiece, "_CACHE_WORDS", 200)  # clears often, under the threads
    ids = _token_ids(tokenizer_file, 256)
    sample = prompts[:2000]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(ids.ids, sample))
    assert got == [ids.encoded(p) for p in sample]


@pytest.mark.parametrize(
    ("field", "edit"),
    [
        ("normalizer", {"lowercase": False}),  # cased: "Hello" is not "hello"
        ("pre_tokenizer", {"type": "Whitespace"}),
    ],
)
def test_a_tokenizer_of_another_shape_keeps_to_encode(
    tokenizer_file: Path, tmp_path: Path, field: str, edit: dict[str, object]
) -> None:
    spec = json.loads(tokenizer_file.read_text())
    spec[field] = spec[field] | edit
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec))
    ids = _token_ids(path, 256)
    assert not ids.word_path
    for text in ("Hello, World!", string.printable, "CamelCase and UPPER words"):
        assert ids.ids(text) == ids.encoded(text)
