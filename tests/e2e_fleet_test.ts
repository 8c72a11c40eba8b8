/**
 * The fleet's tree across network namespaces (issue #16), the part that fits in the suite's
 * budget: 3 edge hosts, an aggregator host, a tracker host, each link a veth pair of its own
 * (testing/fleet.ts). One edge's link is cut silently (its interface down: no FIN, no RST)
 * for longer than the heartbeats allow, then restored; then the aggregator is SIGKILLed and
 * started again; then the tracker's link is cut for longer than the heartbeat timeout. Every event is counted by worker and sequence number. `deno task fleet` runs
 * all four faults of the issue with longer outages and writes the figures to docs/deployment.md.
 *
 * Needs root and iproute2; elsewhere the tests report themselves skipped with the reason. The
 * CURVE variant (CURVE on every tcp hop) runs once the adaptor knows `--curve-servers`.
 */

import assert from "node:assert/strict";
import {
  curveUnavailable,
  Fleet,
  type FleetOptions,
  netnsUnavailable,
  type Outcome,
} from "../testing/fleet.ts";

/** Flip to false to leave the CURVE variant out. */
const CURVE_VARIANT = true;

const HEARTBEAT_INTERVAL = 500;
const HEARTBEAT_TIMEOUT = 1_500;
/** Longer than the heartbeats' bound, so that the heartbeats are what detects the partition. */
const TCP_USER_TIMEOUT = 3_000;
const PARTITION_MS = 4_000;
/** Generous slack on the heartbeats' bound (interval + timeout): 2 shared CPUs, 9 processes. */
const SLACK_MS = 2_000;

const netns = await netnsUnavailable();

async function scenario(curve: boolean): Promise<void> {
  const options: FleetOptions = {
    edges: 3,
    rate: 200,
    heartbeatInterval: HEARTBEAT_INTERVAL,
    heartbeatTimeout: HEARTBEAT_TIMEOUT,
    tcpUserTimeout: TCP_USER_TIMEOUT,
    curve,
  };
  const fleet = await Fleet.start(options);
  let outcome: Outcome;
  try {
    await fleet.partitionEdge(0, PARTITION_MS, 1_000);
    await fleet.killAggregator(1_000);
    await fleet.partitionTracker(HEARTBEAT_TIMEOUT + 1_500, 1_000);
    outcome = await fleet.finish();
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${fleet.transcript()}`);
  } finally {
    await fleet.destroy();
  }
  const [partition, kill, tracker] = outcome.faults;
  const shown = JSON.stringify(outcome, null, 1);
  if (curve) {
    // Every hop was CURVE: the aggregator a client of each edge with the edge's key from
    // --curve-servers, admitted by each edge's allow-list (again after the partition: edge0
    // admitted it twice; every edge again after the SIGKILL), the tracker admitted by the
    // aggregator's, the first time and after the restart.
    const logs = fleet.logs();
    const said = (who: string, re: RegExp) => logs.filter((l) => l.who === who && re.test(l.message)).length;
    for (const [i, edge] of fleet.edges.entries()) {
      const server = new RegExp(`CURVE client of ${edge.endpoint}: server key from .*/servers/`);
      assert.equal(said("aggregator", server), 2, `the aggregator as CURVE client of ${edge.name}`);
      const admitted = said(edge.name, /Allowed XPUB client .* allowed by .*\/edge-clients\/agg$/);
      assert.ok(admitted >= (i === 0 ? 3 : 2), `${edge.name} admitted the aggregator ${admitted} times`);
    }
    const tracker = said("aggregator", /Allowed XPUB client .* allowed by .*\/agg-clients\/tracker$/);
    assert.ok(tracker >= 2, `the aggregator admitted the tracker ${tracker} times`);
    assert.equal(logs.filter((l) => / is plaintext/.test(l.message)).length, 0, "a plaintext tcp socket");
  }

  // The partition was detected by the heartbeats, on both sides, within their bound.
  const bound = HEARTBEAT_INTERVAL + HEARTBEAT_TIMEOUT + SLACK_MS;
  const endpoint = `${fleet.edges[0].endpoint}`.replace("tcp://", "");
  const byAggregator = partition.detections.find((d) =>
    d.who === "aggregator" && d.message.includes(endpoint)
  );
  const byEdge = partition.detections.find((d) => d.who === "edge0");
  assert.ok(byAggregator, `the aggregator never logged edge0's connection dropped:\n${shown}`);
  assert.ok(byEdge, `edge0 never logged the aggregator's connection dropped:\n${shown}`);
  assert.ok(byAggregator.ms < bound, `the aggregator took ${byAggregator.ms} ms (bound ${bound})`);
  assert.ok(byEdge.ms < bound, `edge0 took ${byEdge.ms} ms (bound ${bound})`);
  assert.ok(byAggregator.ms < PARTITION_MS && byEdge.ms < PARTITION_MS, "detected only after the heal");

  // edge0's worker lost its subscription while cut off and got it back after the heal.
  const cut = partition.losses.find((l) => l.edge === "edge0")!;
  assert.ok(cut.unsubscribedMs !== undefined && cut.unsubscribedMs < bound, `unsubscription:\n${shown}`);
  assert.ok(cut.resubscribedMs !== undefined && cut.resubscribedMs >= 0, `resubscription:\n${shown}`);
  assert.ok(cut.flowingMs !== undefined && cut.flowingMs >= 0, `edge0 flowing again:\n${shown}`);
  // What edge0 lost is what it published from the cut to its resubscription: the events it
  // sent before the heartbeats gave up (lost with the dead connection) and those it never sent.
  assert.ok(cut.lost > 0 && cut.filteredAtWorker > 0, `edge0 should have lost events:\n${shown}`);
  assert.equal(cut.droppedAtWorker, 0, "no queue filled up at 200 events/s");
  assert.ok(cut.lostInTree >= 0, `more lost than published:\n${shown}`);

  // The edges not cut off lost nothing, then or ever; nothing arrived twice or out of order.
  for (const loss of partition.losses.filter((l) => l.edge !== "edge0")) {
    assert.equal(loss.lost, 0, `${loss.edge} lost events while edge0 was cut off:\n${shown}`);
  }
  // After the aggregator's SIGKILL every edge's worker got the subscription back.
  for (const loss of kill.losses) {
    assert.ok(
      loss.flowingMs !== undefined,
      `${loss.edge} not flowing after the aggregator's restart:\n${shown}`,
    );
    assert.ok(
      loss.unsubscribedMs !== undefined && loss.resubscribedMs !== undefined,
      `${loss.edge}:\n${shown}`,
    );
  }
  // The tracker's link cut for longer than the heartbeat timeout: the aggregator dropped it
  // within the bound, every worker lost the subscription and got it back once the link was up.
  const trackerAddress = fleet.trackerLink.b.address;
  const dropped = tracker.detections.find((d) =>
    d.who === "aggregator" && d.message.includes(trackerAddress)
  );
  assert.ok(dropped, `the aggregator never logged the tracker's connection dropped:\n${shown}`);
  assert.ok(dropped.ms < bound, `the aggregator took ${dropped.ms} ms to drop the tracker (bound ${bound})`);
  for (const loss of tracker.losses) {
    assert.ok(loss.unsubscribedMs !== undefined && loss.unsubscribedMs < bound, `${loss.edge}:\n${shown}`);
    assert.ok(loss.resubscribedMs !== undefined && loss.flowingMs !== undefined, `${loss.edge}:\n${shown}`);
    assert.ok(loss.lost > 0, `${loss.edge} lost nothing while the tracker was cut off:\n${shown}`);
  }
  for (const edge of outcome.edges) {
    assert.equal(edge.unexplained, 0, `${edge.edge} lost events outside the faults:\n${shown}`);
    assert.equal(edge.reordered, 0, `${edge.edge}: events out of order or twice:\n${shown}`);
    assert.ok(edge.published > 500, `${edge.edge} published only ${edge.published}`);
  }
  for (const name of ["edge1", "edge2"]) {
    const edge = outcome.edges.find((e) => e.edge === name)!;
    const lost = [kill, tracker].map((f) => f.losses.find((l) => l.edge === name)!.lost);
    assert.equal(
      edge.received,
      edge.published - lost[0] - lost[1],
      `${name}: all but the faults':\n${shown}`,
    );
  }
}

const NAME = "fleet in network namespaces: a silent partition of one edge is detected by the heartbeats, " +
  "the others lose nothing, subscriptions come back; so after the aggregator's SIGKILL and a cut tracker link";

// One variant in the suite (its budget): the CURVE one, the same faults with CURVE on every tcp hop.
// The plaintext tree runs in `deno task fleet` (and here with CURVE_VARIANT = false).
if (CURVE_VARIANT) {
  const curve = netns ?? await curveUnavailable();
  const name = `${NAME}, with CURVE on every tcp hop`;
  if (curve) Deno.test({ name: `${name} (skipped: ${curve})`, ignore: true, fn: () => {} });
  else Deno.test(name, () => scenario(true));
} else if (netns) {
  Deno.test({ name: `${NAME} (skipped: ${netns})`, ignore: true, fn: () => {} });
} else {
  Deno.test(NAME, () => scenario(false));
}
