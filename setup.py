"""Build hook only (the project is configured in pyproject.toml): the wheel carries the
bundled model and the studio's resources, which live in the top-level ``models/`` and
``resources/`` folders of the repository, as package data under
``sss_studio/_bundled/`` (the training scripts in ``models/`` are not shipped).
``sss_studio.bundled`` finds them there, in a clone, or in a frozen app."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLED = {
    "models": ["sss_embed.onnx", "MODEL_CARD.md"],
    "resources": ["style.qss", "icons/*.svg", "icons/*.png", "icons/*.ico", "samples/*.png", "samples/LICENSE.md",
                  "sss-studio.desktop", "sss-studio-mime.xml"],
}


class BuildPyWithBundled(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install finds them in the repository itself
        dest = Path(self.build_lib) / "sss_studio" / "_bundled"
        for folder, patterns in BUNDLED.items():
            for pattern in patterns:
                for src in sorted((ROOT / folder).glob(pattern)):
                    target = dest / folder / src.relative_to(ROOT / folder)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, target)


setup(cmdclass={"build_py": BuildPyWithBundled})
