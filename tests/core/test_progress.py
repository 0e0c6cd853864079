from robolearn.core.progress import Progress


def test_log_files_get_a_line_per_tenth_not_per_update(capsys):
    bar = Progress(100, "step")
    for i in range(1, 101):
        bar.update(i, f"loss {1 / i:.2f}")
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert 10 <= len(lines) <= 11 and "\r" not in "".join(lines)
    assert lines[0].startswith("  step 1/100  loss 1.00") and lines[-1].startswith("  step 100/100")
    assert "ETA 0s" in lines[-1]


def test_disabled_progress_prints_nothing(capsys):
    bar = Progress(10, "episode", enabled=False)
    bar.update(5)
    bar.close()
    assert capsys.readouterr().err == ""
