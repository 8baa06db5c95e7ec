"""Effects: Redis writes made in one atomic step with a state change (the outbox).

DESIGN principle 6: every effect (a callback to send, an SMS, a job that will
move money or send a command) is recorded in the same atomic step as the state
change that causes it. An `Effects` collects such writes as plain Redis
commands on declared keys; `OrderStore.update(..., effects=...)` runs them in
the Lua compare-and-set that writes the order, so a process killed at any
instant leaves both the new order and its effects, or neither. The work they
describe is then carried out by jobs and the callback worker, which are run
again after a crash and are keyed, so nothing is done twice.

Alone (`run`), the writes go out in one MULTI/EXEC.

    Effects.call(cmd, key, *args)      any one-key command (HSET, RPUSH, ZADD, XADD ...)
    Effects.arq_job(...)               an arq job, unless one with that id exists or has
                                       a result (arq's own uniqueness rule); when the queues
                                       are not on the data's Redis (a Cluster), an entry of
                                       the step's shard's relay stream instead, which the
                                       relay enqueues the same way (bridge/relay.py)

Encoding for the Lua side (`LUA_RUN`): the keys go in KEYS from `key_base` on;
ARGV from `arg_base` on holds the op count, then per op: command, key count, key
indexes, arg count, args. Values are passed as they are (bytes are binary-safe).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import redis.asyncio as aioredis
from arq.constants import job_key_prefix, result_key_prefix

from bridge import redisconn
from bridge.store import shards

Value = bytes | str | int | float
RELAY_MAXLEN = 1_000_000  # a bound; the relay deletes what it enqueued

# Runs the encoded ops; expects `ki` (KEYS offset) and `ai` (ARGV index of the op count).
LUA_RUN = """
local function run_effects(ki, ai)
  local n = tonumber(ARGV[ai])
  local i = ai + 1
  for _ = 1, n do
    local cmd = ARGV[i]
    local nk = tonumber(ARGV[i + 1])
    local ks = {}
    for j = 1, nk do ks[j] = KEYS[ki + tonumber(ARGV[i + 1 + j])] end
    i = i + 2 + nk
    local na = tonumber(ARGV[i])
    local as = {}
    for j = 1, na do as[j] = ARGV[i + j] end
    i = i + 1 + na
    if cmd == 'ARQJOB' then
      -- keys: job, result, queue; args: ttl ms, payload, score, job id
      if redis.call('EXISTS', ks[1]) == 0 and redis.call('EXISTS', ks[2]) == 0 then
        redis.call('PSETEX', ks[1], as[1], as[2])
        redis.call('ZADD', ks[3], as[3], as[4])
      end
    else
      local call = {cmd}
      for _, k in ipairs(ks) do call[#call + 1] = k end
      for _, a in ipairs(as) do call[#call + 1] = a end
      redis.call(unpack(call))
    end
  end
end
"""


class Effects:
    def __init__(self) -> None:
        self.keys: list[str] = []
        self._index: dict[str, int] = {}
        self.ops: list[tuple[str, list[int], list[Value]]] = []
        self._conditional = False  # an arq job whose id may be taken: needs Lua alone
        self._hooks: list[Callable[[], None]] = []

    def __bool__(self) -> bool:
        return bool(self.ops)

    def _key(self, key: str) -> int:
        if key not in self._index:
            self._index[key] = len(self.keys)
            self.keys.append(key)
        return self._index[key]

    def call(self, command: str, key: str, *args: Value) -> Effects:
        self.ops.append((command.upper(), [self._key(key)], list(args)))
        return self

    def hset(self, key: str, field: str | None = None, value: Value | None = None,
             mapping: Mapping[str, Value] | None = None) -> Effects:
        """HSET as redis-py spells it (so code that writes to a pipeline writes here too)."""
        flat: list[Value] = [field, value] if field is not None and value is not None else []
        for k, v in (mapping or {}).items():
            flat += [k, v]
        return self.call("HSET", key, *flat)

    def expire(self, key: str, seconds: int) -> Effects:
        return self.call("EXPIRE", key, int(seconds))

    def on_commit(self, hook: Callable[[], None]) -> None:
        """Run `hook` once the writes are made (not when the step is refused)."""
        self._hooks.append(hook)

    def committed(self) -> None:
        hooks, self._hooks = self._hooks, []
        for hook in hooks:
            hook()

    def xadd(self, key: str, fields: Mapping[str, Value], maxlen: int) -> Effects:
        flat: list[Value] = ["MAXLEN", "~", maxlen, "*"]
        for k, v in fields.items():
            flat += [k, v]
        return self.call("XADD", key, *flat)

    def arq_job(self, queue: str, job_id: str, payload: bytes, score_ms: int,
                ttl_ms: int, *, fresh: bool = False) -> Effects:
        """An arq job as `enqueue_job` writes it, unless the id is taken (`fresh`: the
        id is new, e.g. a uuid, so it cannot be). Relayed when the queues are elsewhere."""
        if shards.current().relay:
            self.ops.append(("RELAY", [], [job_id, payload, score_ms, ttl_ms]))
            return self
        self._conditional = self._conditional or not fresh
        keys = [self._key(job_key_prefix + job_id), self._key(result_key_prefix + job_id),
                self._key(queue)]
        self.ops.append(("ARQJOB", keys, [ttl_ms, payload, score_ms, job_id]))
        return self

    def extend(self, other: Effects) -> Effects:
        for command, keys, args in other.ops:
            self.ops.append((command, [self._key(other.keys[k]) for k in keys], args))
        self._conditional = self._conditional or other._conditional
        self._hooks += other._hooks
        return self

    def _resolved(self, shard: int | None) -> tuple[list[str], list[tuple[str, list[int],
                                                                          list[Value]]]]:
        """Keys and ops with relayed jobs made XADDs to the relay stream of the step's
        shard: `shard`, else the one its keys are in."""
        if not any(op[0] == "RELAY" for op in self.ops):
            return self.keys, self.ops
        layout = shards.current()
        if shard is None:
            found = {s for s in (layout.shard_of_key(k) for k in self.keys) if s is not None}
            if len(found) != 1:
                raise ValueError(f"a relayed job needs the step's shard (keys: {self.keys})")
            shard = found.pop()
        keys = list(self.keys)
        stream = layout.relay_stream(shard)
        if stream not in keys:
            keys.append(stream)
        at = keys.index(stream)
        ops: list[tuple[str, list[int], list[Value]]] = []
        for op in self.ops:
            if op[0] == "RELAY":
                job_id, payload, score, ttl = op[2]
                op = ("XADD", [at], ["MAXLEN", "~", RELAY_MAXLEN, "*", "job", job_id,
                                     "payload", payload, "score", score, "ttl", ttl])
            ops.append(op)
        return keys, ops

    def encode(self, key_base: int, shard: int | None = None) -> tuple[list[str], list[Value]]:
        """(keys, argv) for `LUA_RUN`: key indexes are relative to `key_base` (the number
        of KEYS before ours). `shard`: the step's (for relayed jobs)."""
        keys, ops = self._resolved(shard)
        argv: list[Value] = [len(ops)]
        for command, kis, args in ops:
            argv += [command, len(kis), *[k + 1 for k in kis], len(args), *args]
        del key_base  # indexes are relative: run_effects(ki = key_base, ...)
        return list(keys), argv

    def to_pipeline(self, pipe: Any, shard: int | None = None) -> None:
        """Queue the writes on a MULTI pipeline (arq jobs unconditionally: only for
        writes whose jobs are all `fresh`)."""
        if self._conditional:
            raise ValueError("effects with a job that may exist need Lua: use run()")
        keys_, ops = self._resolved(shard)
        for command, keys, args in ops:
            names = [keys_[k] for k in keys]
            if command == "ARQJOB":
                pipe.psetex(names[0], int(args[0]), args[1])
                pipe.zadd(names[2], {str(args[3]): float(args[2])})
            else:
                pipe.execute_command(command, *names, *args)

    async def run(self, redis: aioredis.Redis, shard: int | None = None) -> None:
        """Alone: the writes in one MULTI/EXEC (the conditional arq job via Lua)."""
        if not self.ops:
            return
        if self._conditional:
            keys, argv = self.encode(0, shard)
            await redis.eval(LUA_RUN + "\nrun_effects(0, 1)\nreturn 1", len(keys), *keys, *argv)
        else:
            async with redisconn.transaction(redis, self._resolved(shard)[0][0]) as pipe:
                self.to_pipeline(pipe, shard)
                await pipe.execute()
        self.committed()
