"""leafe's environments as Gymnasium environments."""

from __future__ import annotations

import json
import re
import string
from pathlib import Path
from typing import Any, Optional

import gymnasium
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec

from . import _leafe

#: The longest observation the observation space admits, in characters.
MAX_OBSERVATION_CHARS = 1 << 20
#: The longest action the action space admits, in characters.
MAX_ACTION_CHARS = 1024


class Utf8Text(spaces.Text):
    """Any text of at most ``max_length`` characters.

    Gymnasium's :class:`~gymnasium.spaces.Text` admits only the characters of
    its charset; environment observations are free text (punctuation, new
    lines, any Unicode), so this space admits every ``str`` up to
    ``max_length``. Samples are drawn from printable ASCII.
    """

    def __init__(self, max_length: int, *, min_length: int = 0, seed: Any = None):
        super().__init__(
            max_length,
            min_length=min_length,
            charset=string.ascii_letters + string.digits + string.punctuation + " ",
            seed=seed,
        )

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"Utf8Text({self.min_length}, {self.max_length})"


def envs() -> list[str]:
    """The names of the built-in environments (``sokoban``, ``household``, ...)."""
    return list(_leafe.envs())


def _options(opts: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for key, value in opts.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, (str, int, float)):
            raise ValueError(
                f"option {key!r}: expected a str, int, float or bool, got {type(value).__name__}"
            )
        out.append((str(key), str(value)))
    return out


def _index(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return value


class LeafeEnv(gymnasium.Env):
    """A leafe environment component as a :class:`gymnasium.Env` with text spaces.

    Made by :func:`leafe.make`. ``reset(seed=..., options={"task": i})`` starts
    task ``i`` of the split (``options`` may also name ``split`` and any
    environment option); ``step(action)`` applies one text action. ``info``
    carries the environment's own info (``success``, ``dead-end``, ...) plus
    ``admissible_actions`` (when the environment lists its valid actions) and
    ``expert_action`` (when it has an expert).

    ``snapshot()`` returns the episode's state as bytes and ``restore(state)``
    continues from it, exactly: the next steps give what they gave after the
    snapshot was taken.

    Each reset starts a fresh instance seeded with the episode's seed, so an
    episode depends only on its task, seed and actions. ``reset()`` without a
    seed repeats the last seed (the one given to :func:`leafe.make` at first).
    """

    # render_fps: Gymnasium asks every renderer for one; text is printed as it comes.
    metadata = {"render_modes": ["ansi", "human"], "render_fps": 4}

    def __init__(
        self,
        env: str,
        split: Optional[str] = None,
        task: int = 0,
        seed: int = 0,
        render_mode: Optional[str] = None,
        expert_in_info: bool = True,
        **opts: Any,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}"
            )
        self._session = _leafe.EnvSession(str(env))
        #: The environment's description: name, version, splits, max_steps, action_hint.
        self.env_info: dict[str, Any] = json.loads(self._session.info_json())
        self.spec_name = str(env)
        splits = [name for name, _ in self.env_info["splits"]]
        if split is None:
            split = "test" if "test" in splits or not splits else splits[0]
        self.split = split
        self.task = _index("task", task)
        self.episode_seed = _index("seed", seed)
        _options(opts)
        self.options = dict(opts)
        self.render_mode = render_mode
        self.expert_in_info = bool(expert_in_info)
        self.observation_space = Utf8Text(MAX_OBSERVATION_CHARS)
        self.action_space = Utf8Text(MAX_ACTION_CHARS, min_length=1)
        self._observation: Optional[str] = None
        self._check_split(split)

    def _check_split(self, split: str) -> None:
        splits = dict(self.env_info["splits"])
        if split not in splits:
            raise ValueError(
                f"environment {self.env_info['name']!r} has no split {split!r} (splits: {', '.join(splits)})"
            )

    @property
    def sha256(self) -> str:
        """The component's sha256 (what identifies the environment's code)."""
        return self._session.sha256

    @staticmethod
    def _info(info: dict[str, Any], admissible: Optional[list[str]], expert: Optional[str]) -> dict[str, Any]:
        if admissible is not None:
            info["admissible_actions"] = admissible
        if expert is not None:
            info["expert_action"] = expert
        return info

    def reset(
        self, *, seed: Optional[int] = None, options: Optional[dict[str, Any]] = None
    ) -> tuple[str, dict[str, Any]]:
        """Start an episode: task ``options["task"]`` (else the current task) with ``seed``."""
        super().reset(seed=seed)
        if seed is not None:
            self.episode_seed = _index("seed", seed)
        options = dict(options or {})
        if "task" in options:
            self.task = _index("task", options.pop("task"))
        if "split" in options:
            split = options.pop("split")
            self._check_split(split)
            self.split = split
        self.options.update(options)
        obs, admissible, expert = self._session.reset(
            self.split, self.task, self.episode_seed, _options(self.options), self.expert_in_info
        )
        self._observation = obs
        info = {"task": self.task, "split": self.split, "seed": self.episode_seed}
        return obs, self._info(info, admissible, expert)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Apply one text action: ``(observation, reward, terminated, truncated, info)``."""
        if not isinstance(action, str):
            raise ValueError(f"an action is a str, got {type(action).__name__}")
        obs, reward, terminated, truncated, info, admissible, expert = self._session.step(
            action, self.expert_in_info
        )
        self._observation = obs
        return obs, reward, terminated, truncated, self._info(json.loads(info), admissible, expert)

    def render(self) -> Optional[str]:
        """The last observation (``ansi``), or print it (``human``)."""
        if self.render_mode == "ansi":
            return self._observation
        if self.render_mode == "human" and self._observation is not None:
            print(self._observation)
        return None

    def admissible_actions(self) -> Optional[list[str]]:
        """The valid actions now, if the environment lists them."""
        actions = self._session.admissible_actions()
        return None if actions is None else list(actions)

    def expert_action(self) -> Optional[str]:
        """The expert's next action, if the environment has an expert."""
        return self._session.expert_action()

    def snapshot(self) -> bytes:
        """The episode's state: :meth:`restore` continues from it exactly."""
        return self._session.snapshot()

    def restore(self, state: bytes) -> None:
        """Continue from a :meth:`snapshot` of this environment.

        The episode's task, split and seed become the snapshot's. The bytes are
        the envelope ``leafe-host serve`` uses too (base64 them for its
        ``state``), so an episode moves between the package and a server.

        Raises :class:`leafe.EnvError` for bytes that are not a snapshot of this
        environment or that it rejects; the current episode is then kept.
        """
        if not isinstance(state, (bytes, bytearray, memoryview)):
            raise ValueError(f"a snapshot is bytes, got {type(state).__name__}")
        self.split, self.task, self.episode_seed, self._observation = self._session.restore(bytes(state))

    def __repr__(self) -> str:
        return f"<LeafeEnv {self.spec_name} split={self.split} task={self.task} seed={self.episode_seed}>"


def make(
    env: str,
    split: Optional[str] = None,
    task: int = 0,
    seed: int = 0,
    render_mode: Optional[str] = None,
    expert_in_info: bool = True,
    **opts: Any,
) -> LeafeEnv:
    """Make a leafe environment as a :class:`gymnasium.Env`.

    Args:
        env: a built-in name (see :func:`leafe.envs`), ``NAME:DATA`` for a
            built-in that reads data (e.g. ``codecontests:problems.jsonl``), or
            the path of any environment component (``.wasm``).
        split: the split tasks come from (e.g. ``test``, ``train``); by default
            ``test``, or the environment's first split where it has no ``test``.
        task: the task index in the split that ``reset()`` starts.
        seed: the episode seed ``reset()`` uses until given another.
        render_mode: ``ansi`` (``render()`` returns the observation), ``human``
            (prints it) or None.
        expert_in_info: put the expert's next action in ``info`` (when the
            environment has an expert). An expert may be a solver run at every
            step (Sokoban's is): False makes such steps several times faster;
            :meth:`LeafeEnv.expert_action` still asks on demand.
        **opts: environment options, e.g. ``size="8x8"``, ``boxes=3`` for
            Sokoban.

    Raises:
        EnvError: the component cannot be loaded.
        ValueError: an unknown split or a bad task index or seed.

    >>> env = leafe.make("sokoban", split="test", task=3)
    >>> obs, info = env.reset(seed=1)
    """
    made = LeafeEnv(
        env,
        split=split,
        task=task,
        seed=seed,
        render_mode=render_mode,
        expert_in_info=expert_in_info,
        **opts,
    )
    # A spec with these arguments: `made.spec.make()` makes the same environment again.
    made.spec = EnvSpec(
        id=_spec_id(str(env)),
        entry_point="leafe.env:LeafeEnv",
        kwargs={
            "env": str(env),
            "split": made.split,
            "task": task,
            "seed": seed,
            "expert_in_info": expert_in_info,
            **opts,
        },
    )
    return made


def _spec_id(env: str) -> str:
    """``leafe/NAME-v0`` for a built-in, else from the component's file name."""
    name = env.split(":", 1)[0] if env.split(":", 1)[0] in _leafe.envs() else Path(env).stem
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "component"
    return f"leafe/{name}-v0"


def _register() -> None:
    """Each built-in as a Gymnasium id, ``leafe/NAME-v0``."""
    for name in _leafe.envs():
        env_id = f"leafe/{name}-v0"
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point="leafe.env:LeafeEnv", kwargs={"env": name})


_register()
