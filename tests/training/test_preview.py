"""`tfft augment preview`: the grid goes where the user says, never over a user's file without --overwrite."""

from __future__ import annotations

import yaml

from tests.conftest import tiny_config, user_files


def test_out_folder_gets_the_grid_and_a_users_file_survives(tmp_path, cli_runner, user_folder):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config(data={"image_size": [32, 32], "builtin_per_class": 4})))
    args = ("augment", "preview", config, "--per-class", "2", "--out")
    result = cli_runner(*args, user_folder / "notes.txt")
    assert result.exit_code == 2 and "already exists" in result.output and "--overwrite" in result.output
    assert (user_folder / "notes.txt").read_text() == "mine"
    result = cli_runner(*args, user_folder)  # a folder: the grid goes inside, beside the user's files
    assert result.exit_code == 0, result.output
    assert user_files(user_folder) == ["augment_preview.png", "notes.txt", "photos/a.jpg"]
    result = cli_runner(*args, user_folder / "notes.txt", "--overwrite")
    assert result.exit_code == 0, result.output
    assert (user_folder / "notes.txt").read_bytes().startswith(b"\x89PNG")
