"""Data-parallel training on the CPU: two processes over gloo, as `trainer=ddp` runs one per GPU. Corpus BLEU under
DDP comes from n-gram counts summed over the processes, so it is exactly the single-process value on the same
translations, not an average of each process's BLEU."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from sacrebleu.metrics import BLEU
from torchmetrics.text import SacreBLEUScore

from zoo import checkpoint
from zoo.data.batching import collate
from zoo.data.cache import Corpus
from zoo.decoding import greedy_search

ROOT = Path(__file__).resolve().parents[1]
HYPS = ["the cat sat on the mat", "a dog runs in the park today", "it is raining", "the big red house",
        "we went to the sea by train", "he reads a book"]
REFS = ["the cat sat on a mat", "a dog runs in the park", "it is raining again", "the big red house stands",
        "we went to the sea by car", "she reads the book"]
SHARES = [slice(0, 4), slice(4, None)]  # uneven, as DDP's shares of batches of different sizes


def validation_bleu(rank: int, store: str, out: str) -> None:
    """What `Seq2SeqModule` does in validation, on one of two processes: update the metric with this process's
    share, then compute(), which sums the metric's n-gram counts over the processes first."""
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    metric = SacreBLEUScore()
    metric.update(HYPS[SHARES[rank]], [[r] for r in REFS[SHARES[rank]]])
    Path(f"{out}.{rank}").write_text(str(float(metric.compute())))
    dist.destroy_process_group()


def test_validation_bleu_across_processes_is_the_single_process_bleu_of_all_translations(tmp_path):
    mp.spawn(validation_bleu, args=(str(tmp_path / "store"), str(tmp_path / "bleu")), nprocs=2)
    together = {float((tmp_path / f"bleu.{rank}").read_text()) for rank in (0, 1)}
    metric = SacreBLEUScore()
    metric.update(HYPS, [[r] for r in REFS])
    assert together == {float(metric.compute())}  # every process gets the same value, the one-process value
    reference = BLEU(smooth_method="none").corpus_score(HYPS, [REFS]).score / 100  # sacrebleu, unsmoothed
    assert float(metric.compute()) == pytest.approx(reference, abs=1e-6)
    per_rank = [BLEU(smooth_method="none").corpus_score(HYPS[s], [REFS[s]]).score / 100 for s in SHARES]
    assert abs(sum(per_rank) / 2 - reference) > 0.01  # what averaging each process's BLEU would have given


@pytest.mark.slow
def test_run_py_trains_and_evaluates_on_two_cpu_processes(tmp_path):
    proc = subprocess.run([sys.executable, "run.py", "trainer=ddp_cpu", "experiment=smoke", "trainer.max_steps=6",
                           "trainer.val_check_interval=3", "logger=csv",
                           "trainer.enable_checkpointing=true", f"hydra.run.dir={tmp_path}",
                           f"data.cache_dir={tmp_path / 'cache'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("results: ") == 1  # the other process writes and prints nothing
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["device"]["processes"] == 2 and results["train"]["steps"] == 6
    assert [p["step"] for p in results["train"]["val_curve"]] == [3, 6]
    for split in results["test_splits"]:  # decoded in two shares, scored once on all translations in order
        samples = results[split]["samples"]
        assert len(samples) == results[split]["n"] == (40 if split == "test" else 20)
        hyps, refs = [s["hypothesis"] for s in samples], [s["reference"] for s in samples]
        assert results[split]["bleu"] == BLEU().corpus_score(hyps, [refs]).score
    texts = (tmp_path / "cache").glob("*/test.text.json")
    assert [s["source"] for s in results["test"]["samples"]] == [p[0] for p in json.loads(next(texts).read_text())]

    # the last validation (step 6, each process greedy-decoding half of the validation set) against the final
    # weights' validation BLEU computed here, in one process, on the whole set
    saved = checkpoint.read(tmp_path / "checkpoints" / "last.ckpt")
    assert saved["global_step"] == 6
    net, (_, tok) = checkpoint.load_net(saved), checkpoint.load_tokenizers(saved)
    [cache] = (tmp_path / "cache").glob("toytranslation-*[!k]")  # (not its .lock)
    val = Corpus.load(cache).ids["val"]
    batch = collate([val[i] for i in range(len(val))], pad_id=tok.pad_id, bos_id=tok.bos_id, eos_id=tok.eos_id)
    bf16 = results["device"]["precision"] == "bf16-mixed"  # the run's precision, as this CPU chose it
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        hyps = greedy_search(net, batch["src"], batch["src_mask"], bos_id=tok.bos_id, eos_id=tok.eos_id,
                             **{k: saved["zoo"]["decode"][k] for k in ("max_len_a", "max_len_b")})
    metric = SacreBLEUScore()
    metric.update([tok.decode(h) for h in hyps], [[tok.decode(t)] for t in batch["tgt_out"].tolist()])
    assert results["train"]["val_curve"][-1]["bleu"] == pytest.approx(100 * float(metric.compute()), abs=1e-4)
