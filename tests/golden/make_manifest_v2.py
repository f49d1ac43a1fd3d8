"""How tests/golden/manifest_v2.json was made: the trustune.json of a text-pair regression run
(format 2), as the ``regression_run`` fixture of tests/conftest.py writes it, with the temporary
folders of that run replaced by short relative names.

Remake it after a deliberate change of the manifest format (tests/test_manifest.py says when
the writer and the golden file disagree):
    python tests/golden/make_manifest_v2.py RUN_DIR tests/golden/manifest_v2.json
where RUN_DIR is a fresh ``regression_run`` (e.g. run ``pytest tests/test_tasks.py
--basetemp=/tmp/golden`` and pass the ``runs*/sts`` folder it leaves there).
"""

import json
import re
import sys
from pathlib import Path

run, out = Path(sys.argv[1]), Path(sys.argv[2])
text = (run / "trustune.json").read_text(encoding="utf-8")
names = {"train.tsv": "data/train.tsv", "dev.tsv": "data/dev.tsv"}
text = re.sub(r"/[^\"\s]*/(train\.tsv|dev\.tsv)", lambda m: names[m.group(1)], text)
text = re.sub(r"/[^\"\s]*/tiny-bert\d*", "models/tiny-bert", text)
json.loads(text)  # still a manifest
out.write_text(text, encoding="utf-8")
