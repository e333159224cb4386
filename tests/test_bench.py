"""The benchmark's references compute what ours compute (so its ratios compare like with like), and the benchmark
runs end to end and writes every figure the issue asks for."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import BOS, EOS, PAD, SRC_V, TGT_V, build, random_batch
from zoo.decoding import greedy_search
from zoo.models import architectures

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
from references import (TextbookAttention, TorchTransformer, marian_forward, marian_like,  # noqa: E402
                        recompute_greedy, shape, textbook_gru)


@pytest.mark.parametrize("lean", [False, True])
def test_the_textbook_bahdanau_loop_computes_our_logits(lean):
    model = build("attention").eval()
    src, src_mask, tgt_in = random_batch()
    textbook = TextbookAttention(model, lean=lean)
    torch.testing.assert_close(textbook(src, src_mask, tgt_in), model(src, src_mask, tgt_in))


@pytest.mark.parametrize("arch", ["gru", "attention"])
def test_the_textbook_step_loop_computes_our_logits(arch):
    model = build(arch).eval()
    src, src_mask, tgt_in = random_batch()
    torch.testing.assert_close(textbook_gru(model, src, src_mask, tgt_in), model(src, src_mask, tgt_in))


@pytest.mark.parametrize("arch", ["gru", "attention", "transformer"])
def test_recomputing_the_prefix_decodes_what_the_cache_decodes(arch):
    model = build(arch).eval()
    src, src_mask, _ = random_batch()
    with torch.no_grad():
        model.decoder.out.bias[EOS] = -1e4  # never stop early: every row runs the full length
    cached = greedy_search(model, src, src_mask, bos_id=BOS, eos_id=EOS, max_len_a=0.0, max_len_b=9)
    assert recompute_greedy(model, src, src_mask, bos_id=BOS, steps=9).tolist() == cached


def test_ctranslate2_decodes_what_ours_decodes_for_as_many_tokens(tmp_path):
    """The bench's CTranslate2 rows: our model exported, EOS barred by its bias, the limit both minimum and
    maximum, so every row has exactly `steps` tokens, and (greedy, fp32) the same ones as ours."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    from zoo.data.tokenizer import Tokenizer
    from zoo.export import export
    words = " ".join(f"w{i}" for i in range(TGT_V - 4))
    tok = Tokenizer.train([words], kind="word", vocab_size=TGT_V, min_frequency=1)
    model = build("transformer", src_vocab_size=TGT_V).eval()
    src, src_mask, _ = random_batch()
    with torch.no_grad():
        model.decoder.out.bias[EOS] = -1e4
    cached = greedy_search(model, src, src_mask, bos_id=BOS, eos_id=EOS, max_len_a=0.0, max_len_b=9)
    translator = ctranslate2.Translator(str(export(model, tok, tok, tmp_path / "ct2")), compute_type="float32")
    pieces = [tok.pieces(row[mask].tolist()) for row, mask in zip(src, src_mask)]
    out = translator.translate_batch(pieces, beam_size=1, min_decoding_length=9, max_decoding_length=9)
    assert [tok.pieces(h) for h in cached] == [r.hypotheses[0] for r in out]
    assert {len(h) for h in cached} == {9}


def test_the_padded_forward_computes_our_logits(arch):
    """bench's contender for speed.pad_to_multiple pads the batch, yet its logits are ours at the real positions."""
    import bench
    model = build(arch).eval()
    src, src_mask, tgt_in = random_batch(S=7, T=6)
    torch.testing.assert_close(bench.padded_forward(model, src, src_mask, tgt_in, pad_id=PAD),
                               model(src, src_mask, tgt_in))


def test_torch_transformer_is_our_shape_and_causal():
    ours = build("transformer", dropout=0.1, attention_dropout=0.1)
    reference = TorchTransformer(**shape(ours), pad_id=PAD).eval()
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    final_norms = count(reference.transformer.encoder.norm) + count(reference.transformer.decoder.norm)
    assert count(reference) - final_norms == count(ours)  # nn.Transformer ends each stack in a LayerNorm
    assert reference.transformer.encoder.layers[0].self_attn.dropout == 0.1  # ours, not nn.Transformer's one rate
    assert reference.transformer.encoder.layers[0].dropout.p == 0.0
    src, src_mask, tgt_in = random_batch()
    changed = tgt_in.clone()
    changed[:, 4:] = 7
    a, b = reference(src, src_mask, tgt_in), reference(src, src_mask, changed)
    assert a.shape == (3, tgt_in.size(1), TGT_V)
    torch.testing.assert_close(a[:, :4], b[:, :4])


def test_marian_is_our_shape():
    pytest.importorskip("transformers")
    ours = build("transformer")
    marian = marian_like(ours, pad_id=PAD, bos_id=BOS, eos_id=EOS).eval()
    trained = sum(p.numel() for p in marian.parameters() if p.requires_grad)  # (its sinusoids are frozen)
    assert trained + TGT_V == sum(p.numel() for p in ours.parameters())  # its output bias is a fixed buffer
    src, src_mask, tgt_in = random_batch()
    assert marian_forward(marian, src, src_mask, tgt_in).shape == (3, tgt_in.size(1), TGT_V)
    assert marian.config.vocab_size == SRC_V


def test_bench_runs_and_writes_every_figure(tmp_path):
    pytest.importorskip("transformers")
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, "experiments/bench.py", "--preset", "tiny", "--rounds", "1", "--out", str(out),
                    f"data.cache_dir={tmp_path / 'cache'}"], cwd=ROOT, check=True, capture_output=True, timeout=600)
    record = json.loads(out.read_text())
    results = record["results"]
    for key in ["transformer_train_vs_marian", "transformer_train_vs_nn_transformer", "greedy_vs_marian_generate",
                "beam_vs_marian_generate", "cached_vs_recompute_100", "attention_train_vs_loop", "gru_train_vs_loop",
                "padding_efficiency", "matmul_peak_gflops", "transformer_mfu"]:
        assert results[key] > 0, key
    if importlib.util.find_spec("ctranslate2"):
        for key in ["greedy_fp32_vs_ctranslate2_fp32", "beam_fp32_vs_ctranslate2_fp32", "greedy_25_vs_ctranslate2_int8",
                    "beam_100_vs_ctranslate2_int8"]:
            assert results[key] > 0, key
    for arch in architectures():  # every registered architecture's training speed and MFU
        assert results[f"{arch.name}_train_tokens_per_s"] > 0 and 0 < results[f"{arch.name}_mfu"] < 1, arch.name
        assert f"{arch.name} training".lower() in {row["what"].lower() for row in record["table"]}
    assert record["models"] == {arch.name: "registered small instance" for arch in architectures()}
    assert 0 < results["padding_efficiency_unsorted"] < results["padding_efficiency"] <= 1
    assert record["command"].startswith("python experiments/bench.py") and record["machine"]["device"]
    rerun = subprocess.run([sys.executable, "experiments/bench.py", "--preset", "tiny", "--out", str(out)], cwd=ROOT,
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode != 0 and "already exists" in rerun.stderr  # never overwrites a record


def test_the_precision_benchmark_times_both_precisions_and_never_overwrites(tmp_path):
    out = tmp_path / "precision.json"
    command = [sys.executable, "experiments/precision.py", "--models", "gru,transformer", "--batches", "2", "--out",
               str(out), f"data.cache_dir={tmp_path / 'cache'}", "data.source.n_train=2000"]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=600)
    record = json.loads(out.read_text())
    assert record["batches"] == 2 and record["cpu_precision"] in ("bf16-mixed", "32-true")
    for model in ("gru", "transformer"):
        assert set(record["models"][model]) == {"fp32", "bf16_new_shapes", "bf16_shapes_seen"}
        assert all(rate > 0 for rate in record["models"][model].values())
    rerun = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert rerun.returncode != 0 and "already exists" in rerun.stderr


@pytest.mark.parametrize("preset", ["cpu", "gpu"])
def test_every_preset_builds_every_architecture(preset):
    """Every registered architecture composes from the real config tree: the data's own model config where there is
    one (conf/model/multi30k/NAME.yaml), its default elsewhere; the GPU's Transformer at base size."""
    import bench
    from hydra.utils import instantiate

    for arch in architectures():
        overrides = bench.model_config(bench.PRESETS[preset], arch.name)
        expected = (f"model=multi30k/{arch.name}" if (ROOT / "conf/model/multi30k" / f"{arch.name}.yaml").exists()
                    else f"model={arch.name}")
        assert overrides[0] == expected
        net = instantiate(bench.compose_config(overrides).model.net)(src_vocab_size=50, tgt_vocab_size=50, pad_id=0)
        assert isinstance(net, arch.cls)
        if arch.name == "transformer":
            size = (512, 6) if preset == "gpu" else (256, 3)
            assert (shape(net)["d_model"], shape(net)["n_encoder_layers"]) == size
    assert bench.model_config(bench.PRESETS["tiny"], "gru") is None  # the registered small instance
    assert "data.max_tokens=16384" in bench.PRESETS["gpu"]["overrides"]
