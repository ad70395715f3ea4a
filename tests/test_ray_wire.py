"""What travels between the Ray driver and its workers: shards of items out, records' JSON lines back
(a Phase 1 row with its accepted task's line and signature, a Phase 2 episode, each with the facts
the stats count).

No cluster is needed: these are the encodings themselves (the Ray tests run them on a real cluster).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from apigen_gym.core.domain import load_domain
from apigen_gym.core.env import ApigenEnv
from apigen_gym.core.task import Task
from apigen_gym.evaluation.records import Episode, EpisodeSummary, EvalResults
from apigen_gym.evaluation.runner import EpisodeResult, evaluate, format_summary
from apigen_gym.generation.blueprint import ProposalRecord
from apigen_gym.generation.config import GenerationConfig
from apigen_gym.generation.dialogue_facts import DialogueFacts, SideCounts
from apigen_gym.generation.phase1 import ProposalItem, RecombinationItem, compute_stats
from apigen_gym.generation.phase2 import Played, read_records
from apigen_gym.generation.pipeline import generate
from apigen_gym.generation.proposed import Proposed, RoundFacts
from apigen_gym.generation.stats import Phase2Tally
from apigen_gym.generation.store import RunPaths, read_models
from apigen_gym.integrations import ray as ray_executor
from apigen_gym.kit.sampling import signature
from apigen_gym.llm.types import Usage
from apigen_gym.players.oracle import OracleAgent
from apigen_gym.util import jsonio
from apigen_gym.util.jsonio import JsonlAppender


def test_a_shard_travels_with_its_models_as_json_and_comes_back_equal() -> None:
    tasks = load_domain("airline").tasks("test")[:6]
    items = [(task, [0, 2]) for task in tasks] + [RecombinationItem(4, tuple(tasks[:3])), ProposalItem(7)]
    sent = ray_executor.pack_shard(items)
    assert isinstance(sent, bytes)
    assert sent.count(tasks[0].model_dump_json().encode()) == 1  # its JSON, once for both items holding it
    back = ray_executor.unpack_shard(sent)
    assert back == items and type(back[0][0]) is type(tasks[0])
    assert len(sent) < len(pickle.dumps(items)) * 1.1


def test_tasks_this_process_wrote_travel_as_the_lines_they_were_written_as(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Accepted tasks sent on (to Phase 2, to recombination) are not encoded again: their line is."""
    tasks = load_domain("airline").tasks("test")[:4]
    with JsonlAppender(tmp_path / "accepted.jsonl") as accepted:
        for task in tasks[:3]:
            accepted.write(task, task.model_dump_json())
    held = list(read_models(tmp_path / "accepted.jsonl", Task))
    assert all(a is b for a, b in zip(held, tasks[:3]))
    assert jsonio.held_line(held[0]) == tasks[0].model_dump_json()
    assert jsonio.held_line(tasks[3]) is None  # not written: encoded as before
    encoded: list[str] = []
    dump = Task.model_dump_json
    monkeypatch.setattr(
        Task, "model_dump_json", lambda self, **kw: encoded.append(self.id) or dump(self, **kw)
    )
    items = [(task, [0]) for task in tasks]
    back = ray_executor.unpack_shard(ray_executor.pack_shard(items))
    assert encoded == [tasks[3].id]
    assert back == items


def test_a_shard_plain_pickling_cannot_take_goes_as_it_is() -> None:
    def local() -> int:
        return 1

    items = [local, 3]
    assert ray_executor.pack_shard(items) is items
    assert ray_executor.unpack_shard(items) is items


def test_records_come_back_with_the_json_lines_their_worker_made(tmp_path: Path) -> None:
    domain = load_domain("retail")
    ids = [task.id for task in domain.tasks("test")[:3]]
    results = evaluate(lambda: ApigenEnv(domain), lambda: OracleAgent(domain.tools), tmp_path, ids)
    sent = ray_executor._encode(results)
    assert isinstance(sent, bytes)  # pickled by the worker's own code, not left to Ray's reporting thread
    received = ray_executor._decode(sent)
    assert [record for record, _ in received] == results
    assert [line for _, line in received] == [r.model_dump_json() for r in results]
    assert all(type(record) is EpisodeResult for record, _ in received)
    plain = ray_executor._decode(ray_executor._encode([1, "two"]))  # not models: as they are, no line
    assert plain == [(1, None), ("two", None)]


def test_an_eval_episode_travels_as_its_line_and_summary_and_is_read_only_when_asked(tmp_path: Path) -> None:
    domain = load_domain("retail")
    ids = [task.id for task in domain.tasks("test")[:4]]
    results = evaluate(lambda: ApigenEnv(domain), lambda: OracleAgent(domain.tools), tmp_path, ids, trials=2)
    records = list(results)
    sent = [pickle.dumps(Episode(record)) for record in records]
    there = [pickle.loads(blob) for blob in sent]
    for record, episode, blob in zip(records, there, sent):
        summary = record.model_dump_json(exclude={"messages"})
        assert episode.held is None  # the record itself is not sent: its line is, with its summary
        assert len(blob) < (len(record.model_dump_json()) + len(summary)) * 1.05
        assert type(episode.summary) is EpisodeSummary and episode.summary.model_dump_json() == summary
        assert episode.key == (record.task_id, record.trial)
        assert episode.held is None  # the summary did not need the record
        assert episode.line == record.model_dump_json() and episode.record == record
        assert pickle.loads(pickle.dumps(episode)).record == record  # sent on again: the same
    arrived = [pickle.loads(blob) for blob in sent]
    received = EvalResults(arrived)
    assert received.summaries == [e.summary for e in there] and all(e.held is None for e in arrived)
    assert format_summary(received.summaries) == format_summary(records)
    assert received[1] == records[1] and arrived[1].held is not None and arrived[2].held is None
    assert received == records and received[1:3] == records[1:3] and len(received) == 8
    assert [r.model_dump_json() for r in received] == [r.model_dump_json() for r in records]


def test_a_phase2_episode_travels_as_its_line_and_facts_and_counts_the_same(tmp_path: Path) -> None:
    config = GenerationConfig(domain="retail", n=8, seed=4)
    generate(config, tmp_path / "kept")
    generate(config, tmp_path / "cut", max_steps=3)  # episodes cut short: failures
    kept, failed = (
        read_records(RunPaths(tmp_path / "kept").dialogues),
        read_records(RunPaths(tmp_path / "cut").failures),
    )
    assert kept and failed
    here = [Played(record) for record in kept + failed]
    sent = [pickle.dumps(played) for played in here]
    there = [pickle.loads(blob) for blob in sent]
    for record, played, blob in zip(kept + failed, there, sent):
        assert played.held is None  # the record itself is not sent: its line is, once
        assert len(blob) < len(record.model_dump_json()) * 1.25
        assert (played.task_id, played.attempt, played.label, played.digest) == (
            record.task_id,
            record.attempt,
            record.label,
            record.digest,
        )
        assert played.line == record.model_dump_json() and played.record == record
        assert played.facts() == DialogueFacts.of(record.messages)
    domain = load_domain("retail")
    tallies = [Phase2Tally(domain), Phase2Tally(domain)]
    for tally, episodes in zip(tallies, (here, there)):
        for played in episodes:
            tally.add(played, played.label == "success")
    local, remote = tallies
    assert remote.phase2(8) == local.phase2(8) and remote.shape() == local.shape()
    assert remote.language() == local.language() and remote.coverage() == local.coverage()
    assert local.language().user.bigrams > 0 and local.coverage().write_tools


def test_a_batch_of_episodes_carries_each_word_once(tmp_path: Path) -> None:
    generate(GenerationConfig(domain="retail", n=6, seed=4), tmp_path)
    here = [Played(record) for record in read_records(RunPaths(tmp_path).dialogues)]
    there = ray_executor._decode(ray_executor._encode(here))  # a worker's batch, as the driver reads it
    seen: dict[str, str] = {}
    said = 0
    for played, _ in there:
        facts = played.facts()
        for word in (word for turn in facts.user + facts.agent for word in turn):
            assert seen.setdefault(word, word) is word  # one object, however many dialogues use it
            said += 1
    assert len(here) > 1 and 0 < len(seen) < said / 4


def test_a_worker_sends_each_bigram_of_a_side_once_and_the_counts_add_up_the_same(tmp_path: Path) -> None:
    generate(GenerationConfig(domain="retail", n=8, seed=4), tmp_path)
    kept = read_records(RunPaths(tmp_path).dialogues)
    assert len(kept) >= 6
    first, second = (set(), set()), (set(), set())  # two workers' bigrams sent, by side
    batches = [(kept[:5], first), (kept[3:], first), (kept[2:], second)]  # some dialogues sent twice
    sent = [pickle.dumps([Played(record, bigrams) for record in batch]) for batch, bigrams in batches]
    there = [played for blob in sent for played in pickle.loads(blob)]
    repeated = pickle.loads(sent[1])[:2]  # kept[3:5]: the first worker sent all their bigrams already
    for played in repeated:
        facts = played.facts()
        assert isinstance(facts.user, SideCounts) and isinstance(facts.agent, SideCounts)
        assert facts.user.new == facts.agent.new == [] and facts.user.bigrams > 0
    twice = Played(kept[0], (set(), set()))
    assert pickle.loads(pickle.dumps(twice)).facts() == pickle.loads(pickle.dumps(twice)).facts()
    domain = load_domain("retail")
    local, remote = Phase2Tally(domain), Phase2Tally(domain)
    for played in there:
        remote.add(played, True)
    for batch, _ in batches:
        for record in batch:
            local.add(Played(record), True)
    assert remote.language() == local.language() and local.language().agent.distinct_bigrams > 0


def test_round_facts_travel_as_their_fields() -> None:
    facts = RoundFacts(
        recombination=True,
        outcome="rejected",
        stages=(("format", True), ("execution", False)),
        usage=Usage(prompt_tokens=3, completion_tokens=2),
        cost=0.25,
        accepted=False,
        round=2,
        failed=(("execution", "error"),),
        abstentions=1,
    )
    assert pickle.loads(pickle.dumps(facts)) == facts


def test_a_phase1_row_travels_as_its_lines_signature_and_facts_and_counts_the_same(tmp_path: Path) -> None:
    config = GenerationConfig(domain="retail", n=12, seed=3, recombine=0.5, phase="1")
    generate(config, tmp_path)
    paths = RunPaths(tmp_path)
    rows = list(read_models(paths.proposals, ProposalRecord))
    assert {row.kind for row in rows} == {"proposal", "recombination"}
    assert any(row.task is not None for row in rows) and any(row.task is None for row in rows)
    here = [Proposed(row) for row in rows]
    sent = [pickle.dumps(proposed) for proposed in here]
    there = [pickle.loads(blob) for blob in sent]
    for row, proposed, blob in zip(rows, there, sent):
        assert proposed.held is None  # the row itself is not sent: its line is, with its task's
        task_line = row.task.model_dump_json() if row.task is not None else ""
        signed = signature(row.task) if row.task is not None else ""
        assert len(blob) < (len(row.model_dump_json()) + len(task_line) + len(signed)) * 1.1
        assert (proposed.kind, proposed.index, proposed.outcome, proposed.final, proposed.accepts) == (
            row.kind,
            row.index,
            row.outcome,
            row.final,
            row.outcome == "accepted" and row.task is not None,
        )
        assert proposed.parents == tuple(row.parents) and proposed.removal == row.removal
        assert proposed.line == row.model_dump_json() and proposed.record == row
        assert proposed.task == row.task and proposed.task_line == (task_line or None)
        assert proposed.signature == (signed or None)
        assert proposed.facts() == RoundFacts.of(row)
    splits = {"test": 0}
    counted = [compute_stats(config, paths, splits, [p.facts() for p in ps]) for ps in (here, there)]
    assert counted[0] == counted[1] == compute_stats(config, paths, splits)  # the last read from the file
    assert counted[0].recombinations_tried and counted[0].stages
