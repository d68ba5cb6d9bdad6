"""A key a job wrote into its own run directory is redacted after the run (engine/run/scrub.py)."""

from __future__ import annotations

from engine.run.scrub import scrub_secrets

KEY = "sk-scrub-test-0123456789abcdef"


def test_known_secrets_are_redacted_in_the_run_directory_only(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    run_dir = tmp_path / "run"
    (run_dir / "nvflare" / "site-1").mkdir(parents=True)
    log = run_dir / "nvflare" / "site-1" / "log.txt"
    log.write_text(f"client printed {KEY} twice: {KEY}\n")
    clean = run_dir / "job.log"
    clean.write_text("nothing secret\n")
    outside = tmp_path / "elsewhere.txt"
    outside.write_text(KEY)
    (run_dir / "link.txt").symlink_to(outside)  # a link the job made: not followed
    big = run_dir / "model.bin"
    big.write_bytes(b"\0" * 64 + KEY.encode())

    changed = scrub_secrets(run_dir, max_bytes=90)  # the log (84 bytes) is under it, the model (94) over
    assert changed == [log]
    assert log.read_text() == "client printed [REDACTED:OPENAI_API_KEY] twice: [REDACTED:OPENAI_API_KEY]\n"
    assert clean.read_text() == "nothing secret\n" and outside.read_text() == KEY
    assert KEY.encode() in big.read_bytes()  # over the size limit: left as it is (documented)
    assert scrub_secrets(run_dir) == [big]  # with the default limit it is scrubbed too
    assert not list(run_dir.rglob("*.afr-scrub"))
