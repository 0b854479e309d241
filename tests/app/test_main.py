from streamlit.testing.v1 import AppTest


def test_placeholder_app_renders_demo_world():
    at = AppTest.from_file("../../app/main.py", default_timeout=60).run()
    assert not at.exception
    assert [m.label for m in at.metric] == ["users", "items", "train", "valid", "test"]
    assert int(at.metric[0].value.replace(",", "")) == 3000
