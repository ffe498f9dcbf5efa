"""A small but real mlci project, generated at test time: data, two ONNX models and mlci.yaml."""

from __future__ import annotations

import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FEATURES = ["age", "income", "region", "tenure"]
REGIONS = ["north", "south", "east", "west"]


@dataclass(frozen=True)
class Project:
    """Paths of a generated project; ``copy`` gives each test its own folder to break."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "mlci.yaml"

    @property
    def data(self) -> Path:
        return self.root / "data" / "eval.csv"

    def copy(self, destination: Path) -> Project:
        shutil.copytree(self.root, destination)
        return Project(destination)


def make_frame(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n).astype(np.float64)
    income = np.round(rng.lognormal(10.5, 0.5, n), 2)
    region = rng.choice(REGIONS, n)
    tenure = rng.integers(0, 30, n).astype(np.float64)
    logit = -0.03 * (age - 45) + 0.8 * (np.log(income) - 10.5) + 0.05 * tenure - 0.5
    logit += np.where(region == "north", 0.8, 0.0)
    target = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return {
        "id": np.arange(n),
        "age": age,
        "income": income,
        "region": region,
        "tenure": tenure,
        "y": target,
    }


def write_csv(path: Path, frame: dict[str, np.ndarray]) -> None:
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(frame).to_csv(path, index=False)


def train_onnx(frame: dict[str, np.ndarray], path: Path, *, c: float, use_region: bool) -> None:
    """A scikit-learn pipeline exported to ONNX with one input per column."""
    import pandas as pd
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = ["age", "income", "tenure"]
    steps = [("num", StandardScaler(), numeric)]
    if use_region:
        steps.append(("cat", OneHotEncoder(handle_unknown="ignore"), ["region"]))
    pipe = Pipeline(
        [("prep", ColumnTransformer(steps)), ("clf", LogisticRegression(C=c, max_iter=500))]
    )
    x = pd.DataFrame({k: frame[k] for k in FEATURES})
    pipe.fit(x, frame["y"])
    types = [
        (name, StringTensorType([None, 1]) if name == "region" else FloatTensorType([None, 1]))
        for name in FEATURES
    ]
    onx = to_onnx(pipe, initial_types=types, options={id(pipe): {"zipmap": False}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onx.SerializeToString())


CONFIG = """\
version: 1
data:
  path: data/eval.csv
  target: y
  id: id
models:
  - name: demo
    path: models/candidate.onnx
    baseline:
      path: models/baseline.onnx
evaluation:
  bootstrap: 200
  min_slice_size: 20
  slices:
    - feature: region
    - feature: age
      bins: [18, 40, 60, 80]
    - name: long-tenure
      where: "tenure >= 20"
  discover:
    max_level: 2
    top_k: 5
"""


def build_project(root: Path) -> Project:
    train = make_frame(3000, seed=1)
    evaluation = make_frame(1500, seed=2)
    write_csv(root / "data" / "eval.csv", evaluation)
    train_onnx(train, root / "models" / "candidate.onnx", c=1.0, use_region=True)
    train_onnx(train, root / "models" / "baseline.onnx", c=1.0, use_region=False)
    (root / "mlci.yaml").write_text(textwrap.dedent(CONFIG))
    return Project(root)
