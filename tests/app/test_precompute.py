from app.precompute import main
from mmgrec_core.rundir import PROJECTIONS as FILE


def test_precompute_writes_the_projections_and_refuses_a_bad_run(tiny_run, tmp_path, capsys):
    assert main([str(tiny_run)]) == 0
    assert (tiny_run / FILE).exists()
    assert main([str(tmp_path / "missing")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    assert main([]) == 2
