"""Sweeps through Hydra's launchers (the `cluster` extra): the SLURM config against the real config tree and the
sbatch script it makes, and real sweeps through joblib and submitit's local executor that end in the report."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")  # the cluster extra
pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
joblib = pytest.importorskip("joblib")

ROOT = Path(__file__).resolve().parents[1]


def sweep(tmp_path: Path, *overrides: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run.py", "-m", *overrides, f"hydra.sweep.dir={tmp_path / 'sweep'}",
                           f"data.cache_dir={tmp_path / 'cache'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


def test_the_slurm_launcher_gives_one_task_per_gpu_as_the_readme_says():
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        default = compose("config", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
        ddp = compose("config", overrides=["hydra/launcher=slurm", "trainer=gpu", "trainer.devices=4",
                                           "trainer.num_nodes=2", "hydra.sweep.dir=SWEEP"], return_hydra_config=True)
    launcher = default.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.partition, launcher.timeout_min, launcher.cpus_per_task, launcher.mem_gb) == (None, 120, 8, 32)
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.nodes) == (1, 1, 1)
    assert launcher.array_parallelism == 16 and launcher.max_num_timeout == 0
    launcher = ddp.hydra.launcher  # the GPUs and tasks follow the trainer, which is what Lightning checks under SLURM
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.nodes) == (4, 4, 2)
    assert (ddp.trainer.devices, ddp.trainer.num_nodes) == (4, 2)
    assert launcher.submitit_folder == "SWEEP/submitit/%j"


def test_the_slurm_launcher_submits_one_array_with_the_configs_resources(tmp_path):
    """No cluster here: an `sbatch` that keeps the script it is given and refuses it (and an `srun`, which submitit
    looks for) stand in for SLURM. The script is the one a cluster would get."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {tmp_path}/job.sbatch\necho "not a cluster" >&2\nexit 1\n')
    for tool in ("srun", "sbatch"):
        (bin_dir / tool).chmod(0o755)
    proc = sweep(tmp_path, "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "trainer=gpu", "trainer.devices=4",
                 "model=gru,attention,transformer", env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert proc.returncode != 0 and "not a cluster" in proc.stderr
    script = (tmp_path / "job.sbatch").read_text()
    flags = {line.split()[1] for line in script.splitlines() if line.startswith("#SBATCH")}
    assert {"--array=0-2%3", "--partition=gpu", "--nodes=1", "--gpus-per-node=4", "--ntasks-per-node=4",
            "--cpus-per-task=8", "--mem=32GB", "--time=120"} <= flags
    assert f"--output={tmp_path}/sweep/submitit/%A_%a/%A_%a_0_log.out" in flags
    assert f"{sys.executable} -u -m submitit.core._submit {tmp_path}/sweep/submitit/%j" in script


def check_sweep(proc: subprocess.CompletedProcess, sweep_dir: Path) -> None:
    """Both jobs wrote their results and the report callback, in the launching process, wrote report.md (and the
    explorer page beside it)."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in sorted(sweep_dir.rglob("results.json"))]
    assert sorted(r["model"] for r in results) == ["gru", "transformer"]
    assert all(r["train"]["steps"] == 6 and r["test"]["n"] == 40 for r in results)
    assert proc.stdout.strip().splitlines()[-1] == f"report: {sweep_dir / 'report.md'}"
    report = (sweep_dir / "report.md").read_text()
    assert "| gru | " in report and "| transformer | " in report and "2 runs in" in report
    assert "failed" not in report
    assert '"name":"transformer"' in (sweep_dir / "explorer.html").read_text()


@pytest.mark.slow
def test_a_sweep_through_joblib_runs_its_jobs_in_parallel_and_ends_in_the_report(tmp_path):
    proc = sweep(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "model=gru,transformer",
                 "experiment=smoke", "logger=csv")
    check_sweep(proc, tmp_path / "sweep")
    assert "Joblib.Parallel(n_jobs=2,backend=loky" in proc.stdout
    # each job ran in a worker process of its own, which joblib gives the machine's cores / n_jobs threads
    threads = {json.loads(p.read_text())["device"]["name"].rsplit(", ", 1)[1]
               for p in (tmp_path / "sweep").rglob("results.json")}
    assert threads == {f"{max(1, joblib.cpu_count() // 2)} threads"}


@pytest.mark.slow
def test_a_sweep_through_submitit_runs_each_job_as_a_submitit_job_and_ends_in_the_report(tmp_path):
    """submitit's local executor runs the jobs as processes of this machine, through the code path of SLURM's."""
    proc = sweep(tmp_path, "hydra/launcher=submitit_local", "model=gru,transformer", "experiment=smoke", "logger=csv")
    check_sweep(proc, tmp_path / "sweep")
    logs = sorted((tmp_path / "sweep/.submitit").glob("*/*_0_log.out"))
    assert len(logs) == 2 and all("results: " in log.read_text() for log in logs)  # each job's stdout, kept
