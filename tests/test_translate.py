"""python -m zoo.translate: a real run's checkpoint gives the run's own translations, in input order whatever the
batches; every option against zoo.decoding's searches of each sentence alone; every user error as one line on stderr
and exit status 1. The fast tests use a checkpoint written here with `zoo.checkpoint.describe` (random weights,
word-level vocabularies, so one word is one token); the slow ones train a tiny run once."""
import importlib.util
import io
import json
import os
import random
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from zoo import checkpoint
from zoo.data.tokenizer import Tokenizer
from zoo.decoding import beam_search, greedy_search
from zoo.errors import CheckpointError
from zoo.models import Transformer
from zoo.translate import main

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)
ROOT = Path(__file__).resolve().parents[1]
SRC_WORDS, TGT_WORDS = [f"s{i}" for i in range(40)], [f"t{i}" for i in range(40)]
DECODE = {"beam_size": 3, "alpha": 0.6, "max_len_a": 1.2, "max_len_b": 10}


def write_checkpoint(path: Path, *, max_positions: int = 64, never_special: bool = False) -> Path:
    """A zoo checkpoint of a small random Transformer, as run.py writes it (less Lightning's training state).
    `never_special`: the model never emits a special token but unk, so every output runs to its length limit."""
    src_tok = Tokenizer.train([" ".join(SRC_WORDS)], kind="word", vocab_size=100, min_frequency=1)
    tgt_tok = Tokenizer.train([" ".join(TGT_WORDS)], kind="word", vocab_size=100, min_frequency=1)
    kwargs = {"src_vocab_size": len(src_tok), "tgt_vocab_size": len(tgt_tok), "pad_id": tgt_tok.pad_id,
              "d_model": 32, "n_heads": 2, "d_ff": 64, "n_encoder_layers": 1, "n_decoder_layers": 1,
              "max_positions": max_positions}
    torch.manual_seed(0)
    net = Transformer(**kwargs)
    if never_special:
        with torch.no_grad():
            net.decoder.out.bias[[tgt_tok.pad_id, tgt_tok.bos_id, tgt_tok.eos_id]] = -1e4
    info = checkpoint.describe(model="transformer", data="words", net_class="zoo.models.transformer.Transformer",
                               net_kwargs=kwargs, src_tokenizer=src_tok, tgt_tokenizer=tgt_tok, decode=DECODE,
                               precision="bf16-mixed")
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}, "zoo": info}, path)
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("words") / "words.ckpt")


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(SRC_WORDS, k=rng.randint(1, 14))) for _ in range(n)]


def translate(monkeypatch, capsys, *argv: str, stdin: str | bytes = "") -> tuple[int, str, str]:
    """main(argv) in this process: (exit status, stdout, stderr)."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def alone(path: Path, lines: list[str], *, beam_size: int, alpha: float = 0.6,
          autocast: torch.dtype | None = torch.bfloat16) -> list[str]:
    """Each line translated by itself (a batch of one, no padding) by zoo.decoding's own searches."""
    saved = checkpoint.read(path)
    net = checkpoint.load_net(saved)
    src_tok, tgt_tok = checkpoint.load_tokenizers(saved)
    search = {"bos_id": tgt_tok.bos_id, "eos_id": tgt_tok.eos_id, "max_len_a": DECODE["max_len_a"],
              "max_len_b": DECODE["max_len_b"]}
    out = []
    with torch.autocast("cpu", dtype=autocast, enabled=autocast is not None):
        for line in lines:
            src = torch.tensor([src_tok.encode(line)])  # (1, S)
            src_mask = torch.ones_like(src, dtype=torch.bool)  # (1, S)
            hyp = (greedy_search(net, src, src_mask, **search)[0] if beam_size == 1 else
                   beam_search(net, src, src_mask, beam_size=beam_size, alpha=alpha, **search)[0])
            out.append(tgt_tok.decode(hyp))
    return out


@pytest.mark.parametrize("options, expected", [
    ([], {"beam_size": 3}),  # the checkpoint's settings: beam 3, alpha 0.6, bf16 autocast
    (["--greedy"], {"beam_size": 1}),
    (["--beam", "1"], {"beam_size": 1}),
    (["--beam", "5", "--alpha", "0"], {"beam_size": 5, "alpha": 0.0}),
    (["--precision", "32-true"], {"beam_size": 3, "autocast": None}),
])
def test_each_translation_is_the_search_of_its_sentence_alone(ckpt, monkeypatch, capsys, options, expected):
    """Batched, padded and length-sorted by a small budget (many batches), yet each output is what greedy_search
    or beam_search make of its sentence alone, at its place in the input."""
    lines = sentences(30)
    status, out, err = translate(monkeypatch, capsys, str(ckpt), "--max-tokens", "120", *options,
                                 stdin="\n".join(lines) + "\n")
    assert (status, err) == (0, "")
    assert out.split("\n") == [*alone(ckpt, lines, **expected), ""]
    assert len(set(out.split("\n"))) > 25  # the outputs differ, so the comparison says something about order


def test_a_byte_order_mark_is_not_part_of_the_first_word(ckpt, monkeypatch, capsys):
    lines = sentences(3)
    plain = translate(monkeypatch, capsys, str(ckpt), stdin="\n".join(lines) + "\n")
    assert translate(monkeypatch, capsys, str(ckpt), stdin="\ufeff" + "\n".join(lines) + "\n") == plain


def test_empty_lines_give_empty_lines_and_never_reach_the_model(ckpt, monkeypatch, capsys):
    rows = []

    def counted(net, src, src_mask, **kw):  # beam_search, counting the sentences that reach the model
        rows.append(src.size(0))
        return beam_search(net, src, src_mask, **kw)

    monkeypatch.setattr("zoo.translate.beam_search", counted)
    lines = ["", "s1 s2 s3", "   ", "\t", "s4", ""]  # whitespace only normalizes to nothing: no tokens
    status, out, _ = translate(monkeypatch, capsys, str(ckpt), stdin="\n".join(lines) + "\n")
    assert status == 0 and sum(rows) == 2
    translations = out.split("\n")
    assert len(translations) == len(lines) + 1 and translations[-1] == ""
    assert [bool(t) for t in translations[:-1]] == [False, True, False, False, True, False]
    assert translations[1] == alone(ckpt, ["s1 s2 s3"], beam_size=3)[0]
    no_final_newline = translate(monkeypatch, capsys, str(ckpt), stdin="s1 s2 s3\ns4")[1]
    assert no_final_newline == f"{translations[1]}\n{translations[4]}\n"
    rows.clear()
    assert translate(monkeypatch, capsys, str(ckpt), stdin="\n\n")[:2] == (0, "\n\n")
    assert rows == []


def test_lines_up_to_the_models_positions_translate_and_longer_ones_are_named(tmp_path, monkeypatch, capsys):
    """max_positions 24 bounds the source and the output: with outputs of up to 1.2 x 12 + 10 = 24 tokens a
    12-word line fits (its output runs to the limit: the model never emits EOS); a 13-word line would need 25."""
    path = write_checkpoint(tmp_path / "short.ckpt", max_positions=24, never_special=True)
    status, out, err = translate(monkeypatch, capsys, str(path), stdin="s1\n" + " ".join(SRC_WORDS[:12]))
    assert (status, err) == (0, "") and [len(t.split()) for t in out.splitlines()] == [11, 24]
    status, out, err = translate(monkeypatch, capsys, str(path), stdin="s1\n\n" + " ".join(SRC_WORDS[:13]))
    assert (status, out) == (1, "")
    assert err == ("error: line 3 has 13 source tokens, which allow an output of 25 tokens (--max-len-a 1.2 x 13 + "
                   "--max-len-b 10), more than the model's max_positions (24); lower --max-len-a or --max-len-b\n")
    fixed = ["--max-len-a", "0", "--max-len-b", "24"]
    status, out, _ = translate(monkeypatch, capsys, str(path), *fixed, stdin=" ".join(SRC_WORDS[:24]))
    assert status == 0 and len(out.split()) == 24
    status, _, err = translate(monkeypatch, capsys, str(path), *fixed, stdin="s1\n" + " ".join(SRC_WORDS[:25]))
    assert err == "error: line 2 has 25 source tokens, more than the model's max_positions (24)\n"


def test_output_file_run_directory_and_latest(ckpt, tmp_path, monkeypatch, capsys):
    lines = "\n".join(sentences(5)) + "\n"
    _, expected, _ = translate(monkeypatch, capsys, str(ckpt), stdin=lines)
    (tmp_path / "in.txt").write_text(lines)
    status, out, _ = translate(monkeypatch, capsys, str(ckpt), "--input", str(tmp_path / "in.txt"), "--output",
                               str(tmp_path / "out.txt"))
    assert (status, out, (tmp_path / "out.txt").read_text()) == (0, "", expected)
    run_dir = tmp_path / "outputs/2026-01-01/00-00-00"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints/last.ckpt").write_bytes(ckpt.read_bytes())
    assert translate(monkeypatch, capsys, str(run_dir), stdin=lines)[1] == expected
    monkeypatch.chdir(tmp_path)
    assert translate(monkeypatch, capsys, "latest", stdin=lines)[1] == expected


def broken_checkpoints(tmp_path: Path, good: Path) -> dict[str, tuple[Path, str]]:
    """Files that are not usable zoo checkpoints, and what the error must say about each."""
    data = good.read_bytes()
    (tmp_path / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.ckpt").write_text("not a checkpoint\n")
    torch.save({"state_dict": {}}, tmp_path / "lightning.ckpt")
    saved = torch.load(good, weights_only=True)
    torch.save({**saved, "zoo": {**saved["zoo"], "version": 99}}, tmp_path / "future.ckpt")
    torch.save({**saved, "zoo": {**saved["zoo"], "net": {"class": "os.system", "kwargs": {}}}},
               tmp_path / "foreign.ckpt")
    torch.save({**saved, "zoo": {**saved["zoo"], "precision": "bf16-true"}}, tmp_path / "bf16-true.ckpt")
    torch.save({**saved, "state_dict": {}}, tmp_path / "no-weights.ckpt")
    return {"missing": (tmp_path / "missing.ckpt", "does not exist"),
            "empty run directory": (tmp_path, f"checkpoint {tmp_path}/checkpoints/last.ckpt does not exist"),
            "truncated": (tmp_path / "truncated.ckpt", "cannot be read (truncated or not a checkpoint)"),
            "text": (tmp_path / "text.ckpt", "cannot be read (truncated or not a checkpoint)"),
            "not the zoo's": (tmp_path / "lightning.ckpt", "was not written by the zoo (it has no 'zoo' entry)"),
            "other version": (tmp_path / "future.ckpt", "has format version 99; this zoo reads 1"),
            "foreign class": (tmp_path / "foreign.ckpt", "cannot be used: unknown model class os.system"),
            "no weights": (tmp_path / "no-weights.ckpt", "cannot be used: Error(s) in loading state_dict"),
            "precision": (tmp_path / "bf16-true.ckpt", "was trained with precision 'bf16-true', which translate "
                                                       "does not reproduce; choose --precision")}


def test_unusable_checkpoints_are_one_line_errors_naming_the_file(ckpt, tmp_path, monkeypatch, capsys):
    for name, (path, message) in broken_checkpoints(tmp_path, ckpt).items():
        status, out, err = translate(monkeypatch, capsys, str(path), stdin="s1\n")
        assert (status, out) == (1, ""), name
        assert err.startswith("error: ") and err.count("\n") == 1, (name, err)
        assert f"checkpoint {path}" in err and message in err, (name, err)


@pytest.mark.parametrize("options, stdin, message", [
    ([], "", "error: no input: stdin is empty"),
    (["--beam", "0"], "s1", "error: --beam (0) must be >= 1"),
    (["--alpha", "-0.5"], "s1", "error: --alpha (-0.5) must be >= 0"),
    (["--beam", "0", "--alpha", "-1", "--max-tokens", "0"], "s1",
     "error: --beam (0) must be >= 1; --alpha (-1.0) must be >= 0; --max-tokens (0) must be >= 1"),
    (["--max-len-b", "-1"], "s1", "error: --max-len-b (-1) must be >= 0"),
    (["--beam", "four"], "s1", "error: argument --beam: invalid int value: 'four' (see --help)"),
    (["--greedy", "--beam", "4"], "s1", "error: --greedy and --beam 4 contradict each other"),
    (["--precision", "8"], "s1", "error: argument --precision: invalid choice: '8'"),
    (["--device", "abacus"], "s1", "error: --device abacus is not a device (cpu, cuda, cuda:N)"),
    ([], b"s1\ns2 \xff\n", "error: stdin: line 2 is not UTF-8"),
])
def test_bad_options_and_input_are_refused_before_the_checkpoint_is_read(tmp_path, monkeypatch, capsys, options,
                                                                         stdin, message):
    """The checkpoint does not exist: these errors come first, before anything is loaded."""
    status, out, err = translate(monkeypatch, capsys, str(tmp_path / "missing.ckpt"), *options, stdin=stdin)
    assert (status, out) == (1, "")
    assert err.startswith(message) and err.count("\n") == 1, err


needs_ctranslate2 = pytest.mark.skipif(importlib.util.find_spec("ctranslate2") is None,
                                       reason="the deploy (or bench) extra installs ctranslate2")


@needs_ctranslate2
def test_ctranslate2_gives_our_greedy_translations_at_fp32(tmp_path, monkeypatch, capsys):
    """The model exported to CTranslate2 and run there: the same greedy and beam translations as ours at fp32, line
    for line, empty lines kept."""
    path = write_checkpoint(tmp_path / "words.ckpt", never_special=True)
    lines = sentences(30)
    lines.insert(7, "")
    options = ["--greedy", "--max-tokens", "120"]
    ours = translate(monkeypatch, capsys, str(path), *options, "--precision", "32-true",
                     stdin="\n".join(lines) + "\n")
    theirs = translate(monkeypatch, capsys, str(path), *options, "--engine", "ctranslate2",
                       stdin="\n".join(lines) + "\n")  # (float32, its default compute type)
    assert ours[0] == 0 and theirs == ours
    assert len(set(ours[1].split("\n"))) > 25
    # beam search: this model never ends a sentence before its limit, so every hypothesis of a sentence has the same
    # length, length normalisation plays no part, and the engine's beam search must find ours
    beam = ["--beam", "4", "--max-tokens", "120"]
    ours = translate(monkeypatch, capsys, str(path), *beam, "--precision", "32-true", stdin="\n".join(lines) + "\n")
    theirs = translate(monkeypatch, capsys, str(path), *beam, "--engine", "ctranslate2",
                       stdin="\n".join(lines) + "\n")
    assert ours[0] == 0 and theirs == ours


@needs_ctranslate2
@pytest.mark.parametrize("options, message", [
    (["--engine", "ctranslate2", "--compute-type", "float16"], "--compute-type float16 is not one CTranslate2 "
                                                              "supports on cpu"),
    (["--compute-type", "int8"], "--compute-type int8 is for --engine ctranslate2; ours takes --precision"),
    (["--engine", "ctranslate2", "--precision", "32-true"], "--precision 32-true is for our own decoder"),
])
def test_ctranslate2_options_are_refused_in_one_line_before_the_checkpoint_is_read(tmp_path, monkeypatch, capsys,
                                                                                   options, message):
    status, out, err = translate(monkeypatch, capsys, str(tmp_path / "missing.ckpt"), *options, stdin="s1\n")
    assert (status, out) == (1, "") and err.startswith(f"error: {message}") and err.count("\n") == 1, err


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is available")
def test_cuda_without_a_cuda_device_is_refused(ckpt, monkeypatch, capsys):
    assert translate(monkeypatch, capsys, str(ckpt), "--device", "cuda", stdin="s1")[2] == (
        "error: --device cuda: no CUDA device is available\n")


def test_files_named_by_options_are_checked(ckpt, tmp_path, monkeypatch, capsys):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "taken.txt").write_text("keep me\n")
    for options, message in [
        (["--input", str(tmp_path / "nowhere.txt")], f"error: --input {tmp_path}/nowhere.txt does not exist\n"),
        (["--input", str(tmp_path / "empty.txt")], f"error: no input: {tmp_path}/empty.txt is empty\n"),
        (["--output", str(tmp_path / "taken.txt")],
         f"error: --output {tmp_path}/taken.txt already exists; it is never overwritten\n"),
        (["--output", str(tmp_path / "no/such/dir.txt")],
         f"error: --output {tmp_path}/no/such/dir.txt: the folder {tmp_path}/no/such does not exist\n")]:
        assert translate(monkeypatch, capsys, str(ckpt), *options, stdin="s1\n") == (1, "", message)
    assert (tmp_path / "taken.txt").read_text() == "keep me\n"


class Ordered(OrderedDict):
    """Not a type torch's weights-only unpickler allows: loading it would import this module."""


class Trap:
    """Unpickling this creates the file `path`: code run by loading a checkpoint."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return Path.touch, (self.path,)


@pytest.mark.parametrize("payload", ["ordered_dict_subclass", "code"])
def test_a_checkpoint_holding_pickled_objects_is_refused_without_running_them(ckpt, tmp_path, monkeypatch, capsys,
                                                                              payload):
    """The "zoo" entry is fine, but the file also holds an object only a full unpickler builds."""
    ran = tmp_path / "ran"
    obj = Ordered(a=torch.zeros(1)) if payload == "ordered_dict_subclass" else Trap(ran)
    path = tmp_path / "pickled.ckpt"
    torch.save({**torch.load(ckpt, weights_only=True), "callbacks": {"x": obj}}, path)
    with pytest.raises(CheckpointError, match=f"checkpoint {path} cannot be read"):
        checkpoint.read(path)
    status, _, err = translate(monkeypatch, capsys, str(path), stdin="s1\n")
    assert status == 1 and err.startswith(f"error: checkpoint {path} cannot be read") and err.count("\n") == 1
    assert not ran.exists()
    if payload == "code":  # the trap works: a full unpickler would have run it
        torch.load(path, weights_only=False)
        assert ran.exists()


def test_the_entry_point_exits_with_1_and_one_line_without_a_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "zoo.translate", str(tmp_path / "missing.ckpt")], input="s1\n",
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == f"error: checkpoint {tmp_path}/missing.ckpt does not exist\n"


# A real run: the smoke experiment, trained just enough (40 steps of a smaller Transformer) that its translations
# differ from one sentence to the next, and with checkpoints. On one thread, which is faster for so small a model on
# a busy machine, and which makes the CLI's reproduction (on the default threads) the stronger test. About 30 s
# (longer where bf16 is emulated).
RUN = ["experiment=smoke", "model=transformer", "trainer.enable_checkpointing=true", "logger=csv",
       "trainer.max_steps=40", "trainer.val_check_interval=40", "model.net.d_model=64", "model.net.d_ff=256",
       "model.scheduler.warmup=30", "data.max_tokens=1024",
       "trainer.precision=bf16-mixed"]  # whatever this CPU would pick: the autocast path is the one to reproduce


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("run")
    proc = subprocess.run([sys.executable, "run.py", *RUN, f"hydra.run.dir={d}", f"data.cache_dir={d}/cache"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return d


def samples(run_dir: Path, split: str) -> list[dict]:
    return json.loads((run_dir / "results.json").read_text())[split]["samples"]


@pytest.mark.slow
@pytest.mark.parametrize("split", ["test", "test_long"])
def test_the_cli_gives_the_runs_own_translations(run_dir, split):
    """The run's beam search of its test splits under bf16 autocast, reproduced from the checkpoint alone."""
    pairs = samples(run_dir, split)
    proc = subprocess.run([sys.executable, "-m", "zoo.translate", str(run_dir)],
                          input="".join(f"{p['source']}\n" for p in pairs), capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.split("\n") == [*(p["hypothesis"] for p in pairs), ""]


@pytest.mark.slow
@needs_ctranslate2
def test_ctranslate2_gives_a_trained_models_greedy_translations(run_dir):
    """A trained model (the run's checkpoint) on its test split: greedy fp32 translations by CTranslate2 are ours."""
    sources = "".join(f"{p['source']}\n" for p in samples(run_dir, "test"))
    outputs = []
    for options in (["--precision", "32-true"], ["--engine", "ctranslate2", "--compute-type", "float32"]):
        proc = subprocess.run([sys.executable, "-m", "zoo.translate", str(run_dir), "--greedy", *options],
                              input=sources, capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert (proc.returncode, proc.stderr) == (0, "")
        outputs.append(proc.stdout)
    assert outputs[0] == outputs[1]
    assert len(set(outputs[0].split("\n"))) >= 10


@pytest.mark.slow
def test_translations_come_back_in_input_order(run_dir, monkeypatch, capsys):
    """Both test splits shuffled together, with empty lines between, in batches of a few sentences: the output is
    the run's translations in the shuffled order."""
    pairs = samples(run_dir, "test") + samples(run_dir, "test_long")
    assert len({p["hypothesis"] for p in pairs}) >= 10  # enough distinct outputs that a wrong order would show
    random.Random(0).shuffle(pairs)
    for at in (5, 20):
        pairs.insert(at, {"source": "", "hypothesis": ""})
    status, out, err = translate(monkeypatch, capsys, str(run_dir), "--max-tokens", "200",
                                 stdin="".join(f"{p['source']}\n" for p in pairs))
    assert (status, err) == (0, "")
    assert out.split("\n") == [*(p["hypothesis"] for p in pairs), ""]
