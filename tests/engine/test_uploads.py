"""`{file: path}` inputs: small files inline as data URIs, large ones uploaded once per run."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from runs import records, run_spec, write_spec

from batchrun.sandbox import Sandbox


def test_small_files_go_inline_and_large_ones_are_uploaded_once(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    small = b"\x89PNG small " * 100
    large = bytes(range(256)) * 1200  # 300 KB: above Replicate's 256 KB for data URIs
    (tmp_path / "small.png").write_bytes(small)
    (tmp_path / "large.bin").write_bytes(large)
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            input:
              prompt: "p${i}"
              image: {file: small.png}
              mask: {file: "${big}"}
            matrix: {i: [0, 1, 2], big: [large.bin]}
        """,
    )
    summary = run_spec(spec, sandbox)
    assert summary.ok
    assert summary.client.uploads == 1

    sent = [p.input for p in sandbox.state.predictions.values()]
    assert len(sent) == 3
    inline = "data:image/png;base64," + base64.b64encode(small).decode()
    assert {p["image"] for p in sent} == {inline}
    urls = {p["mask"] for p in sent}
    assert len(urls) == 1
    assert next(iter(urls)).startswith(f"{sandbox.base_url}/v1/files/")
    assert [f.data for f in sandbox.state.files.values()] == [large]

    # The manifest keeps what the spec said, not the bytes: a path and the content's hash.
    record = next(iter(records(tmp_path / "run").values()))
    assert record.input["image"]["file"] == "small.png"
    assert len(record.input["image"]["sha256"]) == 64
    assert "base64" not in (tmp_path / "run" / "manifest.jsonl").read_text()


def test_an_input_file_gone_since_the_plan_is_an_error_for_its_key(tmp_path: Path) -> None:
    import anyio
    import pytest

    from batchrun.engine.uploads import InputFileError, InputFiles
    from batchrun.planner.expand import FileInput

    gone = FileInput(path=tmp_path / "gone.png", relpath="gone.png", sha256="0" * 64, size=3)

    async def resolve() -> object:
        return await InputFiles(client=None).resolve({"image": gone})  # type: ignore[arg-type]

    with pytest.raises(InputFileError) as caught:
        anyio.run(resolve)
    assert str(caught.value) == "cannot read the input file gone.png: No such file or directory"


def test_a_file_uploaded_once_is_not_read_again_but_its_loss_is_still_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import anyio

    from batchrun.api.objects import UploadedFile
    from batchrun.engine import uploads
    from batchrun.planner.expand import FileInput

    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (uploads.INLINE_LIMIT + 1))
    file = FileInput(path=big, relpath="big.bin", sha256="1" * 64, size=big.stat().st_size)
    reads: list[Path] = []
    read = uploads._read

    def counted(file: FileInput) -> bytes:
        reads.append(file.path)
        return read(file)

    monkeypatch.setattr(uploads, "_read", counted)

    class Files:
        async def upload(self, content: bytes, *, filename: str, content_type: str) -> Any:
            return UploadedFile.from_json({"id": "f1", "urls": {"get": "https://files/f1"}})

    files = uploads.InputFiles(Files())

    async def resolve_three_times() -> list[Any]:
        return [await files.resolve({"mask": file}) for _ in range(3)]

    assert anyio.run(resolve_three_times) == [{"mask": "https://files/f1"}] * 3
    assert (files.uploads, reads) == (1, [big])

    big.unlink()
    with pytest.raises(uploads.InputFileError) as caught:
        anyio.run(resolve_three_times)
    assert str(caught.value) == "cannot read the input file big.bin: No such file or directory"
