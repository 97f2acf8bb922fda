"""Vocab: sorted distinct characters <-> ids, exact round trips for any
Unicode text (English, CJK, astral characters such as emoji, lone surrogates)."""
import numpy as np
import pytest

from charrnn_ext import Vocab

from conftest import cjk_text, english_like_text

TEXTS = {
    "english": "The quick brown fox jumps over the lazy dog.\nPack my box with five dozen liquor jugs!\t",
    "generated-english": english_like_text(3000, seed=5),
    "cjk": "我们在这里讨论幸福之路。人生的意义，在于追求——“幸福”！\n",
    "generated-cjk": cjk_text(3000, n_distinct=400, seed=6),
    "emoji": "I ❤️ 🐍 and 🦀; flags 🇫🇷, family 👨‍👩‍👧, 𝔘𝔫𝔦𝔠𝔬𝔡𝔢, 𠀋𪚥 (CJK ext B).",
    "controls": "\x00\x01\x7f\r\n\t\u200b\ufeff\U0010ffff\ue000",
    "one-char": "aaaaaaa",
}


@pytest.mark.parametrize("name", list(TEXTS))
def test_sorted_distinct_characters(name):
    text = TEXTS[name]
    vocab = Vocab.from_text(text)
    expected = "".join(sorted(set(text)))
    assert vocab.chars == expected
    assert len(vocab) == len(set(text))
    codes = [ord(c) for c in vocab.chars]
    assert codes == sorted(codes) and len(set(codes)) == len(codes)


@pytest.mark.parametrize("name", list(TEXTS))
def test_round_trip(name):
    text = TEXTS[name]
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    assert isinstance(ids, np.ndarray)
    assert ids.dtype.kind == "i"
    assert ids.shape == (len(text),)
    assert ids.min() >= 0 and ids.max() < len(vocab)
    assert vocab.decode(ids) == text
    # ids are the positions in the sorted character list
    assert [vocab.chars[i] for i in ids] == list(text)
    # lists and other integer dtypes decode too
    assert vocab.decode(ids.tolist()) == text
    assert vocab.decode(ids.astype(np.int64)) == text
    assert vocab.decode(ids.astype(np.uint32)) == text


def test_vocab_accepts_str_subclasses_and_chars_is_read_only():
    class Text(str):
        pass

    vocab = Vocab.from_text(Text("hello"))
    assert vocab.chars == "ehlo"
    np.testing.assert_array_equal(vocab.encode(Text("hole")), [1, 3, 2, 0])
    with pytest.raises(AttributeError):
        vocab.chars = "xyz"


def test_ids_follow_code_point_order():
    vocab = Vocab.from_text("cab")
    assert vocab.chars == "abc"
    assert vocab.encode("abcacb").tolist() == [0, 1, 2, 0, 2, 1]
    assert vocab.decode([2, 1, 0]) == "cba"


def test_astral_characters_are_single_ids():
    """An emoji outside the BMP is one character (one id), not two UTF-16 halves."""
    text = "a😀b😀"
    vocab = Vocab.from_text(text)
    assert len(vocab) == 3
    assert vocab.chars == "ab😀"
    assert vocab.encode(text).tolist() == [0, 2, 1, 2]


def test_lone_surrogates_round_trip():
    """Python strings may hold lone surrogates (e.g. from surrogateescape or
    broken UTF-16); they are distinct characters, and a surrogate *pair*
    spelled as two code points is not merged into the astral character."""
    text = "x\ud800y\udfff\ud83d\ude00😀\ud800x"
    vocab = Vocab.from_text(text)
    assert len(vocab) == len(set(text)) == 7
    assert vocab.chars == "".join(sorted(set(text)))
    ids = vocab.encode(text)
    assert len(ids) == len(text) == 9
    assert vocab.decode(ids) == text
    assert vocab.encode("😀").tolist() != vocab.encode("\ud83d\ude00").tolist()


def test_surrogateescape_bytes_round_trip():
    raw = b"caf\xc3\xa9 \xff\xfe broken"
    text = raw.decode("utf-8", "surrogateescape")
    vocab = Vocab.from_text(text)
    assert vocab.decode(vocab.encode(text)).encode("utf-8", "surrogateescape") == raw


@pytest.mark.parametrize("text,missing", [
    ("abd", "d"), ("zab", "z"), ("ab😀", "😀"), ("a中", "中"), ("a\ud800", "\ud800"),
    ("a\U0010ffff", "\U0010ffff"), ("a\n", "\n"),
])
def test_unknown_character_is_a_value_error_naming_it(text, missing):
    vocab = Vocab.from_text("abc")
    with pytest.raises(ValueError) as info:
        vocab.encode(text)
    message = str(info.value)
    assert repr(missing) in message or missing in message
    assert f"U+{ord(missing):04X}" in message
    assert str(text.index(missing)) in message     # its position


def test_empty():
    vocab = Vocab.from_text("ab")
    assert vocab.encode("").shape == (0,)
    assert vocab.decode([]) == ""
    assert vocab.decode(np.zeros(0, dtype=np.int32)) == ""
    with pytest.raises(ValueError):
        Vocab.from_text("")
    with pytest.raises(ValueError):
        Vocab([])


@pytest.mark.parametrize("bad,error", [
    ([2], ValueError), ([-1], ValueError), ([0, 5], ValueError), ([0.0], TypeError),
    (np.array([1.0]), TypeError), (["a"], TypeError),
])
def test_decode_bad_ids(bad, error):
    vocab = Vocab.from_text("ab")
    with pytest.raises(error):
        vocab.decode(bad)


@pytest.mark.parametrize("bad", [b"abc", 3, None, ["a", "b"]])
def test_non_str_text(bad):
    with pytest.raises(TypeError):
        Vocab.from_text(bad)
    with pytest.raises(TypeError):
        Vocab.from_text("abc").encode(bad)


def test_constructor_and_equality():
    assert Vocab("abc") == Vocab.from_text("cabbage"[:3] + "cab")
    assert Vocab(["a", "b"]) == Vocab("ab")
    assert Vocab("ab") != Vocab("abc")
    assert Vocab("ba") != Vocab("ab")    # ids in the order given (a grown vocabulary's)
    with pytest.raises(ValueError):
        Vocab("aab")         # not distinct
    with pytest.raises(ValueError):
        Vocab(["ab", "c"])   # not single characters


def test_vocab_drives_a_model():
    """encode's ids are accepted by the model as they are."""
    from charrnn_ext import CharRNN
    text = TEXTS["emoji"]
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    model = CharRNN(len(vocab), 8, seed=0)
    loss = model.loss(ids[:-1], ids[1:], None)
    assert np.isfinite(loss) and loss > 0
    sample = model.sample(None, int(ids[0]), 50, rng=0)
    assert len(vocab.decode(sample)) == 50


def test_large_text_matches_a_dictionary_encoding():
    """The vectorised encoding equals the seed's char_to_ix lookup on a long
    mixed text (every character, every position)."""
    text = (TEXTS["generated-cjk"] + TEXTS["emoji"] + TEXTS["generated-english"]) * 50
    vocab = Vocab.from_text(text)
    char_to_ix = {ch: i for i, ch in enumerate(sorted(set(text)))}
    ids = vocab.encode(text)
    np.testing.assert_array_equal(ids, [char_to_ix[ch] for ch in text])
    assert vocab.decode(ids[::-1]) == text[::-1]


def test_a_grown_vocabulary_keeps_its_ids():
    """Vocab.grown appends the characters it lacks (sorted among themselves):
    every known character keeps its id; of_text reads a text in a grown
    vocabulary's order when the text holds exactly its characters."""
    vocab = Vocab.from_text("mno")
    grown = vocab.grown("zmb\U0001F600a")
    assert grown.chars == "mnoabz\U0001F600" and vocab.grown("nom") is vocab
    assert grown.missing("qam") == ["q"] and grown.id_of("a") == 3 and grown.id_of("q") == -1
    assert grown.encode("mab").tolist() == [0, 3, 4]
    assert grown.decode([5, 0]) == "zm"
    assert grown.ids_of_codes([ord("o"), ord("q"), 0x10FFFF, -1]).tolist() == [2, -1, -1, -1]
    assert Vocab.of_text("zoo\U0001F600manb", like=grown) is grown
    assert Vocab.of_text("zoo", like=grown) is grown     # a fine-tuned run's text: a part
    assert Vocab.of_text("zoo!", like=grown) == Vocab("!oz")
