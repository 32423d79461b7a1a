"""Completes the sdist `maturin sdist` makes of this package.

maturin packs each workspace crate the extension needs with the files
`cargo package` lists for it: the crate's own directory. Three crates also
compile in files from the repository outside their directories, which the
sdist then lacks and a build from it fails without:

- engine/config embeds ``config/tasker/**/*.toml`` (``include_str!``);
- engine/store embeds ``migrations/**/*.sql`` (``sqlx::migrate!``, build.rs);
- wasm-host reads ``sdk-wit/wit/*.wit`` (only with the ``wasm`` feature).

maturin's ``include`` cannot name files outside ``bindings-python/``, so this
adds them to the archive, at the same places relative to its root as in the
repository. Idempotent.

    python complete_sdist.py dist/tasker-0.1.0.tar.gz [repository root]
"""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

EXTRA = [("config/tasker", "**/*.toml"), ("migrations", "**/*.sql"), ("sdk-wit/wit", "**/*.wit")]


def complete(sdist: Path, root: Path) -> int:
    with tarfile.open(sdist, "r:gz") as old:
        members = [(m, old.extractfile(m).read() if m.isfile() else None) for m in old.getmembers()]
    prefix = members[0][0].name.split("/")[0]
    present = {m.name for m, _ in members}
    added = 0
    for folder, pattern in EXTRA:
        for path in sorted((root / folder).glob(pattern)):
            name = f"{prefix}/{path.relative_to(root).as_posix()}"
            if name in present:
                continue
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = int(path.stat().st_mtime)
            info.mode = 0o644
            members.append((info, data))
            added += 1
    tmp = sdist.with_suffix(".tmp")
    with tarfile.open(tmp, "w:gz", format=tarfile.PAX_FORMAT) as new:
        for info, data in members:
            new.addfile(info, io.BytesIO(data) if data is not None else None)
    tmp.replace(sdist)
    return added


if __name__ == "__main__":
    archive = Path(sys.argv[1])
    repository = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parents[1]
    print(f"{archive.name}: added {complete(archive, repository)} files from outside the crates")
