"""The targets of a bulletin as the compose page offers them, and how many stations a choice reaches.

A tree from the stations registry: the province, its communes, their
stations, labelled with the names an admin gave them (`station_meta`), plus
the groups the stations report. The count is `registry.addressed`, the same
list of expected stations `bulletins.submit` records when it sends.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select

from loaxa.errors import LoaxaError
from loaxa.province.server import schema as t
from loaxa.province.server.bulletins import target_of
from loaxa.province.server.database import Database
from loaxa.province.server.registry import addressed


@dataclass(frozen=True)
class Node:
    path: str  # the target: P, P/C, P/C/S or P/group/G
    label: str
    count: int = 1
    children: tuple[Node, ...] = ()
    named: bool = False  # the label is a name an admin gave ("Xã Ba Vì (ba-vi)"), not the bare slug


@dataclass(frozen=True)
class Tree:
    province: Node  # its children are the communes, theirs the stations
    groups: tuple[Node, ...]

    def nodes(self) -> list[Node]:
        communes = self.province.children
        return [self.province, *communes, *(st for c in communes for st in c.children), *self.groups]

    def paths(self) -> set[str]:
        return {n.path for n in self.nodes()}

    def by_path(self) -> dict[str, Node]:
        return {n.path: n for n in self.nodes()}


def tree(db: Database, province: str) -> Tree:
    """The province's communes and stations from the registry, with their names; the groups they report."""
    s, m = t.stations.c, t.station_meta.c
    query = (
        select(s.station, s.commune, s.groups, m.name, m.commune_name)
        .select_from(t.stations.outerjoin(t.station_meta, m.station == s.station))
        .where(s.station.like(f"{province}/%"))
        .order_by(s.station)
    )
    with db.engine.connect() as conn:
        rows = conn.execute(query).all()
    communes: dict[str, list[Node]] = {}
    commune_names: dict[str, str] = {}
    groups: dict[str, int] = {}
    for station, commune, station_groups, name, commune_name in rows:
        slug = station.split("/")[2]
        communes.setdefault(commune, []).append(Node(station, f"{name} ({slug})" if name else slug, named=bool(name)))
        if commune_name:
            commune_names.setdefault(commune, commune_name)
        for group in json.loads(station_groups) if station_groups else ():
            if isinstance(group, str) and group:  # a station may report anything: a number, an object, null
                groups[group] = groups.get(group, 0) + 1
    nodes = tuple(
        Node(
            f"{province}/{c}",
            f"{commune_names[c]} ({c})" if c in commune_names else c,
            len(members),
            tuple(members),
            named=c in commune_names,
        )
        for c, members in sorted(communes.items())
    )
    return Tree(
        Node(province, province, len(rows), nodes),
        tuple(Node(f"{province}/group/{g}", g, n) for g, n in sorted(groups.items())),
    )


def count(db: Database, province: str, targets: list[str]) -> tuple[int, list[str]]:
    """How many known stations the targets reach, and the targets that are not valid here."""
    parsed, bad = [], []
    for to in targets:
        try:
            target = target_of(to)
        except LoaxaError:
            bad.append(to)
            continue
        if target.province == province:
            parsed.append(target)
        else:
            bad.append(to)
    return (len(addressed(db, parsed)) if parsed else 0), bad
