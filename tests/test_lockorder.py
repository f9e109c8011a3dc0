"""The lock-order graph on synthetic edge sequences: no threads, deterministic."""

from tracethread._core.lockorder import LockOrderGraph


def test_inversion_across_threads_is_a_cycle():
    g = LockOrderGraph()
    assert g.add_edge("A", "B", thread="t1", thread_ident=1) == []
    (c,) = g.add_edge("B", "A", thread="t2", thread_ident=2)
    assert sorted(c.nodes) == ["A", "B"] and not c.single_thread
    assert not c.guarded_by and not c.bounded


def test_same_thread_inversion_is_labelled_single_thread():
    g = LockOrderGraph()
    g.add_edge("A", "B", thread_ident=1)
    (c,) = g.add_edge("B", "A", thread_ident=1)
    assert c.single_thread


def test_repeated_edges_cost_nothing_and_report_nothing():
    g = LockOrderGraph()
    g.add_edge("A", "B", thread_ident=1)
    g.add_edge("B", "A", thread_ident=2)
    for _ in range(100):
        assert g.add_edge("B", "A", thread_ident=2) == []
    assert g.edges[("B", "A")].count == 101
    assert len(g.cycles) == 1


def test_three_cycle_found_when_the_closing_edge_appears():
    g = LockOrderGraph()
    assert g.add_edge("A", "B", thread_ident=1) == []
    assert g.add_edge("B", "C", thread_ident=2) == []
    (c,) = g.add_edge("C", "A", thread_ident=3)
    assert c.nodes == ["C", "A", "B"]
    assert [(e.src, e.dst) for e in c.edges] == [("C", "A"), ("A", "B"), ("B", "C")]


def test_a_cycle_of_thirty_is_shown_whole_and_fingerprinted_once():
    g = LockOrderGraph()
    n = 30
    for i in range(n - 1):
        assert g.add_edge(f"L{i:02}", f"L{i + 1:02}", thread_ident=i) == []
    (c,) = g.add_edge(f"L{n - 1:02}", "L00", thread_ident=99)
    assert len(c.nodes) == n and len(c.edges) == n
    # The same cycle closed from another edge has the same fingerprint.
    assert c.fingerprint == g.fingerprint(c.nodes[5:] + c.nodes[:5])


def test_consistent_order_and_hand_over_hand_make_no_cycle():
    g = LockOrderGraph()
    for a, b in [("A", "B"), ("B", "C"), ("A", "C"), ("C", "D"), ("B", "D")]:
        assert g.add_edge(a, b, thread_ident=1) == []
    assert g.cycles == {}


def test_gate_lock_makes_a_cycle_guarded():
    g = LockOrderGraph()
    g.add_edge("A", "B", thread_ident=1, held={"G", "A"})
    (c,) = g.add_edge("B", "A", thread_ident=2, held={"G", "B"})
    assert c.guarded_by == frozenset({"G"})


def test_no_gate_when_one_edge_was_taken_without_it():
    g = LockOrderGraph()
    g.add_edge("A", "B", thread_ident=1, held={"G", "A"})
    (c,) = g.add_edge("B", "A", thread_ident=2, held={"B"})
    assert c.guarded_by == frozenset()


def test_bounded_edges_give_a_bounded_cycle_until_taken_unbounded():
    g = LockOrderGraph()
    g.add_edge("A", "B", thread_ident=1, bounded=True)
    (c,) = g.add_edge("B", "A", thread_ident=2)
    assert c.bounded
    # The same edge now taken without a timeout: it can hang; reported again, unbounded.
    (again,) = g.add_edge("A", "B", thread_ident=1, bounded=False)
    assert again.fingerprint == c.fingerprint and not again.bounded


def test_signal_nodes_leave_cycle_detection():
    g = LockOrderGraph()
    g.add_edge("A", "S", thread_ident=1)
    g.mark_signal("S")
    assert g.add_edge("S", "A", thread_ident=2) == []


def test_dropped_nodes_take_their_edges_along():
    g = LockOrderGraph()
    g.add_edge("A", "B", thread_ident=1)
    g.add_edge("B", "C", thread_ident=1)
    g.drop_node("B")
    assert g.edges == {} and g.stats()["nodes"] == 0 or set(g.succ.get("A", ())) == set()
    assert g.add_edge("C", "A", thread_ident=2) == []


def test_self_edges_are_ignored():
    g = LockOrderGraph()
    assert g.add_edge("A", "A", thread_ident=1) == []
    assert g.edges == {}
