"""Which bone of a humanoid rig plays which SMPL-X joint: name tables, parent check, structure search.

Pure numpy (no bpy, HOUSE_STYLE 1-2): ``identify`` takes bone names, parent indices and rest heads in
armature space and returns a ``BoneMap``; ``rig.py`` reads those from Blender and stores the map on the
armature. ``rest_from_map`` turns a map into the ``retarget.ArmatureRest`` the retarget passes need
(which SMPL-X rotation drives each bone, which rest directions to align, the hip-height ratio).

Roles. A map assigns a bone to each *role*: the SMPL-X joint names (``pelvis``, ``left_shoulder`` = the
upper arm, ``left_index1`` ...), except that the SMPL-X spine (``spine1..3``) and neck are *chains*: the
roles ``spine`` and ``neck`` hold 1-N bones, bottom to top, and the SMPL-X rotations are distributed over
them by their position along the chain.

Names are compared after normalisation: a ``prefix:`` or ``prefix|`` is dropped, the name is split into
tokens at separators (space, ``.``, ``_``, ``-``), a side marker is taken out (``Left``/``Right`` glued or
not, ``L``/``R``/``l``/``r`` as a token, Daz's ``lCollar``), a centre marker ``x`` (Auto-Rig Pro) is
dropped and the rest is joined lower case: ``mixamorig:LeftForeArm`` -> (left, ``forearm``),
``CC_Base_L_Upperarm`` -> (left, ``ccbaseupperarm``), ``upper_arm_fk.L`` -> (left, ``upperarmfk``).
A table entry matches the joined tokens or any token suffix of them (so any prefix works), fewer dropped
tokens ranking better.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import numpy as np

# ---------------------------------------------------------------------------------------------------
# Roles

SIDES = ("left", "right")
SIDED = ("collar", "shoulder", "elbow", "wrist", "hip", "knee", "ankle", "foot", "eye_smplhf",
         *(f"{finger}{k}" for finger in ("index", "middle", "ring", "pinky", "thumb") for k in (1, 2, 3)))
CENTRE = ("pelvis", "head", "jaw")
CHAINS = ("spine", "neck")
FINGERS = ("thumb", "index", "middle", "ring", "pinky")
# Display / storage order of the roles.
ROLES: tuple[str, ...] = ("pelvis", "spine", "neck", "head", "jaw",
                          *(f"{side}_{base}" for side in SIDES for base in SIDED))
ESSENTIAL: tuple[str, ...] = ("pelvis", "spine", "head",
                              *(f"{side}_{base}" for side in SIDES
                                for base in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")))
# The role each role must descend from (first one that is mapped), for the parent-order check.
_ANCESTORS: dict[str, tuple[str, ...]] = {"spine": ("pelvis",), "neck": ("spine", "pelvis"),
                                           "head": ("neck", "spine", "pelvis"), "jaw": ("head",)}
for _side in SIDES:
    _ANCESTORS.update({
        f"{_side}_collar": ("spine", "pelvis"), f"{_side}_shoulder": (f"{_side}_collar", "spine", "pelvis"),
        f"{_side}_elbow": (f"{_side}_shoulder",), f"{_side}_wrist": (f"{_side}_elbow",),
        f"{_side}_hip": ("pelvis",), f"{_side}_knee": (f"{_side}_hip",), f"{_side}_ankle": (f"{_side}_knee",),
        f"{_side}_foot": (f"{_side}_ankle",), f"{_side}_eye_smplhf": ("head",)})
    for _finger in FINGERS:
        _ANCESTORS[f"{_side}_{_finger}1"] = (f"{_side}_wrist",)
        _ANCESTORS[f"{_side}_{_finger}2"] = (f"{_side}_{_finger}1",)
        _ANCESTORS[f"{_side}_{_finger}3"] = (f"{_side}_{_finger}2",)


_BODY_WORDS = {"collar": "collar", "shoulder": "upper arm", "elbow": "forearm", "wrist": "hand", "hip": "thigh",
               "knee": "shin", "ankle": "foot", "foot": "toes", "eye_smplhf": "eye"}


def role_label(role: str) -> str:
    """A role in the words of the bone it names: ``left_shoulder`` (SMPL-X's upper arm) -> ``left upper arm``."""
    for side in SIDES:
        if role.startswith(side + "_"):
            base = role[len(side) + 1:]
            word = _BODY_WORDS.get(base) or (f"{base[:-1]} {base[-1]}" if base[-1].isdigit() else base)
            return f"{side} {word}"
    return role


def role_weight(role: str) -> float:
    return 3.0 if role in ESSENTIAL else 1.0


# ---------------------------------------------------------------------------------------------------
# Name normalisation

_SIDE_TOKENS = {"l": "left", "left": "left", "r": "right", "right": "right"}
_CENTRE_TOKENS = {"x", "m", "mid", "center", "centre"}


def split_name(name: str) -> tuple[str, tuple[str, ...]]:
    """``(side, tokens)`` of a bone name: side ``left``/``right``/``""``, tokens lower case without it."""
    base = re.split(r"[:|]", name)[-1]
    raw = [t for t in re.split(r"[\s._\-]+", base) if t]
    side = ""
    tokens: list[str] = []
    for index, token in enumerate(raw):
        lower = token.lower()
        if not side and lower in _SIDE_TOKENS and len(raw) > 1:
            side = _SIDE_TOKENS[lower]
            continue
        if lower in _CENTRE_TOKENS and index == len(raw) - 1 and len(raw) > 1:
            continue
        match = re.match(r"^(left|right)(?=[A-Z0-9]|$)", token, re.IGNORECASE) if not side else None
        if match and len(token) > len(match.group(1)):
            side = match.group(1).lower()
            lower = lower[len(match.group(1)):]
        elif not side and re.match(r"^[lr][A-Z]", token):  # Daz: lCollar, rShldrBend
            side = _SIDE_TOKENS[token[0]]
            lower = lower[1:]
        tokens.append(lower)
    return side, tuple(tokens)


def name_cores(name: str) -> tuple[str, list[tuple[str, int]]]:
    """``(side, [(core, dropped_tokens), ...])``: the joined tokens and each token suffix of them."""
    side, tokens = split_name(name)
    return side, [("".join(tokens[i:]), i) for i in range(len(tokens))]


# ---------------------------------------------------------------------------------------------------
# Naming tables


@dataclass(frozen=True)
class NameTable:
    """One naming convention: role -> accepted cores (best first); chains list their cores bottom-up."""

    name: str
    centre: dict[str, tuple[str, ...]]
    sided: dict[str, tuple[str, ...]]
    spine: tuple[str, ...]
    neck: tuple[str, ...] = ()
    check_parents: bool = True
    note: str = ""


def _fingers(pattern: str, names: dict[str, str] | None = None, numbers=(1, 2, 3)) -> dict[str, tuple[str, ...]]:
    """Finger entries: ``pattern`` formatted with {f} (finger word) and {k} (1..3 -> ``numbers``)."""
    names = names or {}
    out = {}
    for finger in FINGERS:
        for k, number in zip((1, 2, 3), numbers, strict=True):
            out[f"{finger}{k}"] = (pattern.format(f=names.get(finger, finger), k=number),)
    return out


def _limbs(collar, shoulder, elbow, wrist, hip, knee, ankle, foot, eye=("eye",)) -> dict[str, tuple[str, ...]]:
    def tup(value):
        return (value,) if isinstance(value, str) else tuple(value)
    return {"collar": tup(collar), "shoulder": tup(shoulder), "elbow": tup(elbow), "wrist": tup(wrist),
            "hip": tup(hip), "knee": tup(knee), "ankle": tup(ankle), "foot": tup(foot), "eye_smplhf": tup(eye)}


def _merge(*parts: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for part in parts:
        for key, value in part.items():
            out[key] = out.get(key, ()) + value
    return out


_VRM_FINGERS = {f"{finger}{k}": (f"{word}{phalanx}",)
                for finger, word in (("index", "index"), ("middle", "middle"), ("ring", "ring"), ("pinky", "little"))
                for k, phalanx in ((1, "proximal"), (2, "intermediate"), (3, "distal"))}

TABLES: tuple[NameTable, ...] = (
    NameTable("SMPL-X", {"pelvis": ("pelvis",), "head": ("head",), "jaw": ("jaw",)},
              _merge(_limbs("collar", "shoulder", "elbow", "wrist", "hip", "knee", "ankle", "foot",
                            ("eyesmplhf", "eye")), _fingers("{f}{k}")),
              ("spine1", "spine2", "spine3"), ("neck",)),
    NameTable("Mixamo", {"pelvis": ("hips",), "head": ("head",), "jaw": ("jaw",)},
              _merge(_limbs("shoulder", "arm", "forearm", "hand", "upleg", "leg", "foot", "toebase"),
                     _fingers("hand{f}{k}")),
              ("spine", "spine1", "spine2", "spine3"), ("neck", "neck1")),
    NameTable("Unreal (UE4/UE5)", {"pelvis": ("pelvis",), "head": ("head",), "jaw": ("jaw",)},
              _merge(_limbs("clavicle", "upperarm", "lowerarm", "hand", "thigh", "calf", "foot", "ball"),
                     _fingers("{f}0{k}")),
              ("spine01", "spine02", "spine03", "spine04", "spine05"), ("neck01", "neck02")),
    NameTable("VRM 1.0", {"pelvis": ("hips",), "head": ("head",), "jaw": ("jaw",)},
              _merge(_limbs("shoulder", "upperarm", "lowerarm", "hand", "upperleg", "lowerleg", "foot", "toes"),
                     _VRM_FINGERS, {"thumb1": ("thumbmetacarpal",), "thumb2": ("thumbproximal",),
                                    "thumb3": ("thumbdistal",)}),
              ("spine", "chest", "upperchest"), ("neck",)),
    NameTable("VRM 0.x", {"pelvis": ("hips",), "head": ("head",), "jaw": ("jaw",)},
              _merge(_limbs("shoulder", "upperarm", "lowerarm", "hand", "upperleg", "lowerleg", "foot", "toes"),
                     _VRM_FINGERS, {"thumb1": ("thumbproximal",), "thumb2": ("thumbintermediate",),
                                    "thumb3": ("thumbdistal",)}),
              ("spine", "chest", "upperchest"), ("neck",)),
    NameTable("VRoid", {"pelvis": ("jbipchips",), "head": ("jbipchead",), "jaw": ("jbipcjaw",)},
              _merge(_limbs("jbipshoulder", "jbipupperarm", "jbiplowerarm", "jbiphand", "jbipupperleg",
                            "jbiplowerleg", "jbipfoot", "jbiptoebase", ("jadjfaceeye", "jbipeye")),
                     _fingers("jbip{f}{k}", {"pinky": "little"})),
              ("jbipcspine", "jbipcchest", "jbipcupperchest"), ("jbipcneck",)),
    NameTable("Rigify meta-rig / Human", {"pelvis": ("spine",), "head": ("spine006",), "jaw": ("jaw",)},
              _merge(_limbs("shoulder", "upperarm", "forearm", "hand", "thigh", "shin", "foot", "toe"),
                     _fingers("f{f}0{k}"), {f"thumb{k}": (f"thumb0{k}",) for k in (1, 2, 3)}),
              ("spine001", "spine002", "spine003"), ("spine004", "spine005")),
    NameTable("Rigify generated (FK controls)", {"pelvis": ("torso",), "head": ("head",), "jaw": ("jawmaster",)},
              _merge(_limbs("shoulder", "upperarmfk", "forearmfk", "handfk", "thighfk", "shinfk", "footfk",
                            "toefk", ("eye",)),
                     _fingers("f{f}0{k}"), {f"thumb{k}": (f"thumb0{k}",) for k in (1, 2, 3)}),
              ("spinefk002", "spinefk003"), ("neck",), check_parents=False,
              note="Rigify: the FK controls are keyed and the take sets the IK/FK switches to FK."),
    NameTable("Character Creator / AccuRIG", {"pelvis": ("hip",), "head": ("head",), "jaw": ("jawroot",)},
              _merge(_limbs("clavicle", "upperarm", "forearm", "hand", "thigh", "calf", "foot", "toebase"),
                     _fingers("{f}{k}"),
                     {f"{finger}{k}": (f"finger{n}{k - 1}",)
                      for n, finger in enumerate(FINGERS) for k in (1, 2, 3)}),
              ("waist", "spine01", "spine02"), ("necktwist01", "necktwist02")),
    NameTable("Daz Genesis 8", {"pelvis": ("hip",), "head": ("head",), "jaw": ("lowerjaw",)},
              _merge(_limbs("collar", "shldrbend", "forearmbend", "hand", "thighbend", "shin", "foot", "toe"),
                     _fingers("{f}{k}", {"middle": "mid"})),
              ("abdomenlower", "abdomenupper", "chestlower", "chestupper"), ("necklower", "neckupper")),
    NameTable("Daz Genesis 9", {"pelvis": ("hip",), "head": ("head",), "jaw": ("lowerjaw",)},
              _merge(_limbs("shoulder", "upperarm", "forearm", "hand", "thigh", "shin", "foot", "toes"),
                     _fingers("{f}{k}", {"middle": "mid"})),
              ("spine1", "spine2", "spine3", "spine4"), ("neck1", "neck2")),
    NameTable("Auto-Rig Pro (FK controls)", {"pelvis": ("croot",), "head": ("chead",), "jaw": ("cjawbone",)},
              _merge(_limbs("cshoulder", "carmfk", "cforearmfk", "chandfk", "cthighfk", "clegfk", "cfootfk",
                            "ctoesfk", ("ceye",)),
                     _fingers("c{f}{k}")),
              ("cspine01", "cspine02", "cspine03"), ("cneck",), check_parents=False,
              note="Auto-Rig Pro: the FK controls are keyed and the take sets the IK/FK switches to FK."),
    NameTable("MakeHuman / MPFB", {"pelvis": ("root",), "head": ("head",), "jaw": ("jaw",)},
              _merge(_limbs("clavicle", "upperarm01", "lowerarm01", "wrist", "upperleg01", "lowerleg01", "foot",
                            "toe11"),
                     {f"{finger}{k}": (f"finger{n + 1}{k}",) for n, finger in enumerate(FINGERS) for k in (1, 2, 3)}),
              ("spine05", "spine04", "spine03", "spine02", "spine01"), ("neck01", "neck02", "neck03")),
)


# ---------------------------------------------------------------------------------------------------
# The map


@dataclass
class BoneMap:
    """Role -> bone name(s) of one armature; chains ``spine``/``neck`` hold ordered lists.

    Attributes:
        roles: single-bone roles (``pelvis``, ``left_elbow`` ...) -> bone name.
        spine: spine bones, bottom to top (1 or more).
        neck: neck bones, bottom to top (0 or more).
        convention: the table that matched, ``structure``, ``user`` or ``preset: <name>``.
        notes: what was skipped and why (one line each).
    """

    roles: dict[str, str] = field(default_factory=dict)
    spine: list[str] = field(default_factory=list)
    neck: list[str] = field(default_factory=list)
    convention: str = ""
    notes: list[str] = field(default_factory=list)

    def bones_of(self, role: str) -> list[str]:
        if role == "spine":
            return list(self.spine)
        if role == "neck":
            return list(self.neck)
        return [self.roles[role]] if role in self.roles else []

    def missing(self, roles=ESSENTIAL) -> list[str]:
        return [role for role in roles if not self.bones_of(role)]

    def pairs(self) -> list[tuple[str, str]]:
        """``[(role, bone), ...]`` in ROLES order (chains: one pair per bone, bottom to top)."""
        out = []
        for role in ROLES:
            out.extend((role, bone) for bone in self.bones_of(role))
        return out

    @classmethod
    def from_pairs(cls, pairs, convention: str = "user") -> BoneMap:
        result = cls(convention=convention)
        for role, bone in pairs:
            if not bone:
                continue
            if role == "spine":
                result.spine.append(bone)
            elif role == "neck":
                result.neck.append(bone)
            elif role in ROLES:
                result.roles[role] = bone
            else:
                raise ValueError(f"Unknown role '{role}' in the bone map (expected one of: {', '.join(ROLES)}).")
        return result

    def to_json(self) -> str:
        return json.dumps({"format": "expgest-bone-map", "version": 1, "convention": self.convention,
                           "map": [[role, bone] for role, bone in self.pairs()]}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> BoneMap:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"The bone-map preset is not valid JSON ({error}).") from error
        if not isinstance(data, dict) or data.get("format") != "expgest-bone-map" or not isinstance(
                data.get("map"), list):
            raise ValueError("The file is not an ExpGest bone-map preset (no 'format': 'expgest-bone-map').")
        return cls.from_pairs([tuple(pair) for pair in data["map"]], convention=str(data.get("convention", "user")))


def essential_message(armature: str, bone_map: BoneMap) -> str | None:
    """One message naming the essential roles a map lacks (None when it has them all)."""
    missing = bone_map.missing()
    if not missing:
        return None
    pretty = ", ".join(role_label(m) for m in missing)
    return (f"'{armature}' is missing essential bones for gestures: {pretty}. Pick them in the Bone Map panel "
            "(Gestures tab) or load a bone-map preset.")


# ---------------------------------------------------------------------------------------------------
# Identification


def _ancestry(parents) -> list[set[int]]:
    result: list[set[int]] = []
    for bone in range(len(parents)):
        seen, node = set(), parents[bone]
        while node >= 0 and node not in seen:
            seen.add(node)
            node = parents[node]
        result.append(seen)
    return result


def _keep_best(best: dict, key, rank: float, bone: int) -> None:
    """Record ``(rank, bone)`` under ``key`` unless a lower (better) rank is already there."""
    if key not in best or rank < best[key][0]:
        best[key] = (rank, bone)


_Hit = tuple[float, int]  # (rank, bone); lower ranks are better


def _table_hits(table: NameTable, splits) -> tuple[dict[str, _Hit], dict[str, dict[int, _Hit]]]:
    """The best-ranked bone per role, and per chain slot, that ``table`` names.

    Returns:
        ``best``: role -> (rank, bone); ``chain_hits``: ``spine``/``neck`` -> slot -> (rank, bone). A rank is
        10 per dropped token plus the entry's position among the table's alternatives (chains: tokens only).
    """
    best: dict[str, _Hit] = {}
    chain_hits: dict[str, dict[int, _Hit]] = {"spine": {}, "neck": {}}
    for bone, (side, cores) in enumerate(splits):
        for core, dropped in cores:
            rank_base = dropped * 10.0
            if side:
                for base, alts in table.sided.items():
                    if core in alts:
                        _keep_best(best, f"{side}_{base}", rank_base + alts.index(core), bone)
                continue
            for role, alts in table.centre.items():
                if core in alts:
                    _keep_best(best, role, rank_base + alts.index(core), bone)
            for chain, alts in (("spine", table.spine), ("neck", table.neck)):
                if core in alts:
                    _keep_best(chain_hits[chain], alts.index(core), rank_base, bone)
    return best, chain_hits


def _below_parent_role(role: str, bones: list[int], chosen: dict[str, list[int]], ancestry) -> bool:
    """Whether ``bones`` descend from the bone(s) of the role's nearest mapped ancestor role, as one line."""
    ok = True
    for ancestor_role in _ANCESTORS.get(role, ()):
        ancestor_bones = chosen.get(ancestor_role, [])
        if ancestor_bones:
            ok = ancestor_bones[-1] in ancestry[bones[0]]
            break
    if ok and len(bones) > 1:  # a chain must be one line of descent
        ok = all(bones[k - 1] in ancestry[bones[k]] for k in range(1, len(bones)))
    return ok


def _match_table(table: NameTable, names, splits, ancestry) -> tuple[float, tuple[BoneMap, dict[str, list[int]]]]:
    """Score one table: (score, (map with its notes, role -> bone indices)). The parent-order check drops bones
    in the wrong place."""
    best, chain_hits = _table_hits(table, splits)
    result = BoneMap(convention=table.name)
    chosen: dict[str, list[int]] = {}
    for role, (_, bone) in best.items():
        chosen[role] = [bone]
    for chain in CHAINS:
        hits = chain_hits[chain]
        chosen[chain] = [hits[slot][1] for slot in sorted(hits)]
    score = 0.0
    penalty = 0.0
    used: set[int] = set()
    # Parent order: each role's bone must descend from its ancestor role's bone(s).
    for role in ROLES:
        bones = chosen.get(role, [])
        if not bones:
            continue
        if any(b in used for b in bones):
            chosen[role] = []
            continue
        if table.check_parents and not _below_parent_role(role, bones, chosen, ancestry):
            result.notes.append(f"{role_label(role)}: '{names[bones[0]]}' is not below the bone of its parent; "
                                "left unmapped.")
            chosen[role] = []
            penalty += role_weight(role)
            continue
        used.update(bones)
        score += role_weight(role)
        rank = best[role][0] if role in best else 0.0
        score -= 0.001 * rank
    return score - penalty, (result, chosen)


def identify(names, parents, heads) -> BoneMap:
    """Map a rig's bones to roles: the best naming table, else (or to complete it) the structure search.

    Args:
        names: bone names.
        parents: parent index per bone, -1 for roots.
        heads: (B, 3) rest heads in armature space (used by the structure search).

    Returns:
        The map; ``missing()`` lists essential roles it could not fill; notes say what was skipped.
    """
    names = [str(n) for n in names]
    parents = [int(p) for p in parents]
    splits = [name_cores(n) for n in names]
    ancestry = _ancestry(parents)
    scored = []
    for table in TABLES:
        score, (result, chosen) = _match_table(table, names, splits, ancestry)
        scored.append((score, table, result, chosen))
    scored.sort(key=lambda item: -item[0])
    score, table, result, chosen = scored[0]
    for role, bones in chosen.items():
        if role == "spine":
            result.spine = [names[b] for b in bones]
        elif role == "neck":
            result.neck = [names[b] for b in bones]
        elif bones:
            result.roles[role] = names[bones[0]]
    if table.note:
        result.notes.append(table.note)
    if result.missing():
        try:
            structural = identify_structure(names, parents, heads)
        except ValueError:
            structural = None
        # The structure search replaces names that largely failed, not a map missing a bone or two (those
        # are better named in the message, e.g. a bone the parent check refused).
        if structural is not None and not structural.missing() and len(result.missing()) >= 3:
            structural.notes.append(f"Bone names match no known rig (best: {table.name}, "
                                    f"{len(result.missing())} essential bones missing); mapped by structure.")
            result = structural
    note_optional(result)
    return result


# ---------------------------------------------------------------------------------------------------
# A humanoid table carried by the file (VRM 0.x / 1.0)

_VRM_BODY = {"hips": "pelvis", "head": "head", "jaw": "jaw", "Shoulder": "collar", "UpperArm": "shoulder",
             "LowerArm": "elbow", "Hand": "wrist", "UpperLeg": "hip", "LowerLeg": "knee", "Foot": "ankle",
             "Toes": "foot", "Eye": "eye_smplhf"}
_VRM_SPINE = ("spine", "chest", "upperChest")
_VRM_PHALANGES = {"Proximal": 1, "Intermediate": 2, "Distal": 3}
_VRM_FINGER_WORDS = {"Index": "index", "Middle": "middle", "Ring": "ring", "Little": "pinky", "Thumb": "thumb"}


def _camel(name: str) -> str:
    """``left_upper_arm`` (the VRM add-on's VRM 1.0 attribute names) -> ``leftUpperArm``; camelCase unchanged."""
    head, *rest = str(name).split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _vrm_role(name: str, vrm1: bool) -> str | None:
    """The role of one VRM humanoid bone name (``leftUpperArm``, ``rightThumbMetacarpal`` ...), or None."""
    if name in _VRM_BODY:
        return _VRM_BODY[name]
    for side in SIDES:
        if not name.startswith(side):
            continue
        rest = name[len(side):]
        if rest in _VRM_BODY:
            return f"{side}_{_VRM_BODY[rest]}"
        for word, finger in _VRM_FINGER_WORDS.items():
            if not rest.startswith(word):
                continue
            phalanx = rest[len(word):]
            if finger == "thumb" and vrm1:  # VRM 1.0: Metacarpal, Proximal, Distal
                k = {"Metacarpal": 1, "Proximal": 2, "Distal": 3}.get(phalanx)
            else:  # VRM 0.x thumbs and every other finger: Proximal, Intermediate, Distal
                k = _VRM_PHALANGES.get(phalanx)
            return f"{side}_{finger}{k}" if k else None
    return None


def map_from_humanoid(table, names, convention: str = "VRM humanoid (from the file)") -> BoneMap | None:
    """A map from the humanoid table a VRM file carries: VRM bone name -> armature bone name.

    Keys may be VRM 1.0 or 0.x names, camelCase (``leftUpperArm``) or the VRM add-on's snake_case
    (``left_upper_arm``); the version is told by the thumb (``ThumbMetacarpal`` only exists in 1.0,
    ``ThumbIntermediate`` only in 0.x). Entries naming a bone the armature lacks are left out with a note.

    Returns:
        The map, or None when the table names no bone of this armature.
    """
    present = set(str(n) for n in names)
    pairs = {_camel(k): str(v) for k, v in dict(table).items() if v}
    vrm1 = any(k.endswith("ThumbMetacarpal") for k in pairs) or not any(k.endswith("ThumbIntermediate")
                                                                          for k in pairs)
    result = BoneMap(convention=convention)
    spine: dict[int, str] = {}
    for key, bone in pairs.items():
        if bone not in present:
            result.notes.append(f"The file's humanoid table names bone '{bone}' for '{key}', which the armature "
                                "does not have; left unmapped.")
            continue
        if key in _VRM_SPINE:
            spine[_VRM_SPINE.index(key)] = bone
        elif key == "neck":
            result.neck = [bone]
        else:
            role = _vrm_role(key, vrm1)
            if role is not None and role in ROLES:
                result.roles[role] = bone
    result.spine = [spine[k] for k in sorted(spine)]
    if not result.roles and not result.spine:
        return None
    note_optional(result)
    return result


def note_optional(result: BoneMap) -> None:
    """One note listing the optional parts the rig lacks (they are skipped, the rest still moves)."""
    skipped = []
    for side in SIDES:
        fingers = [f for f in FINGERS if f"{side}_{f}1" not in result.roles]
        if len(fingers) == len(FINGERS):
            skipped.append(f"{side} fingers")
        elif fingers:
            skipped.append(f"{side} {'/'.join(fingers)}")
    for side in SIDES:
        if f"{side}_foot" not in result.roles:
            skipped.append(f"{side} toes")
    if "jaw" not in result.roles:
        skipped.append("jaw")
    if skipped:
        result.notes.append(f"No bones for {', '.join(skipped)}: skipped.")


# ---------------------------------------------------------------------------------------------------
# Structure search (no usable names)


def identify_structure(names, parents, heads) -> BoneMap:
    """Find the humanoid in the hierarchy and rest positions alone.

    The pelvis is the first bone (from the roots down) with two or more long branches (chains of 3+
    bones); the spine branch is the heaviest one; arms are the two long side branches of the spine's
    main path, the head ends that path; legs are the other branches, hanging down. Sides come from the
    facing (toes point forward) and the up direction; fingers are the chains under each hand, the thumb
    the one whose base is furthest from the others.

    Raises:
        ValueError: no humanoid structure found.
    """
    heads = np.asarray(heads, dtype=np.float64)
    count = len(names)
    children = _children_of(parents)
    order = _topological(parents)
    depth, size = _depth_and_size(children, order)
    pelvis = next((b for b in order if len(_long_kids(b, children, depth)) >= 2), None)
    if pelvis is None:
        raise ValueError("no bone with two or more long branches")
    kids = sorted(_long_kids(pelvis, children, depth), key=lambda c: -size[c])
    spine_root = kids[0]
    legs = [_main_chain(r, children, size) for r in _leg_roots(kids[1:], children, depth)]
    # Up: from the feet to the pelvis.
    subtree: list[list[int]] = [[b] for b in range(count)]
    for bone in reversed(order):
        for child in children[bone]:
            subtree[bone].extend(subtree[child])
    up = heads[pelvis] - np.mean([heads[leg[-1]] for leg in legs], axis=0)
    up /= np.linalg.norm(up) or 1.0
    path = _spine_path(spine_root, children, heads, subtree, up)
    # Arms: the two heaviest side branches leaving the spine's main path.
    branch_points = [(size[c], b, c) for b in path for c in children[b] if c not in path and depth[c] >= 2]
    branch_points.sort(reverse=True)
    if len(branch_points) < 2:
        raise ValueError("no arms")
    arm_roots = [branch_points[0][2], branch_points[1][2]]
    arm_branch = max(path.index(branch_points[0][1]), path.index(branch_points[1][1]))
    forward = _facing(legs, heads, up)
    left = np.cross(up, forward)
    result = BoneMap(convention="structure")
    result.roles["pelvis"] = names[pelvis]
    _assign_torso(result, names, heads, path, arm_branch, arm_roots, pelvis, up)
    for arm_root in arm_roots:
        chain = _main_chain(arm_root, children, size, stop_at_fingers=True)
        side = "left" if (heads[chain[-1]] - heads[pelvis]) @ left > 0 else "right"
        _assign_arm(result, side, chain, children, heads, names, up, forward, size, depth)
    for leg in legs:
        side = "left" if (heads[leg[0]] - heads[pelvis]) @ left > 0 else "right"
        _assign_leg(result, side, leg, heads, names, up)
    return result


def _children_of(parents) -> list[list[int]]:
    """Child indices of each bone, in bone order."""
    children: list[list[int]] = [[] for _ in range(len(parents))]
    for bone, parent in enumerate(parents):
        if parent >= 0:
            children[parent].append(bone)
    return children


def _depth_and_size(children, order) -> tuple[list[int], list[int]]:
    """Per bone: the longest chain below it (in bones) and the size of its subtree (itself included)."""
    depth = [0] * len(children)
    size = [1] * len(children)
    for bone in reversed(order):
        for child in children[bone]:
            depth[bone] = max(depth[bone], depth[child] + 1)
            size[bone] += size[child]
    return depth, size


def _long_kids(bone, children, depth) -> list[int]:
    """The children that start a long branch (3+ bones)."""
    return [c for c in children[bone] if depth[c] >= 2]


def _leg_roots(side_kids, children, depth) -> list[int]:
    """The two deepest leg roots among the pelvis's long branches other than the spine, looking through an
    intermediate pelvis bone (one long child that forks into the legs).

    Raises:
        ValueError: fewer than two legs.
    """
    leg_roots: list[int] = []
    for kid in side_kids:
        node = kid
        while len(_long_kids(node, children, depth)) == 1 and len(children[node]) == 1:
            node = children[node][0]
        forks = _long_kids(node, children, depth)
        leg_roots.extend(forks if len(forks) >= 2 else [kid])
    if len(leg_roots) < 2:
        raise ValueError("fewer than two legs")
    return sorted(leg_roots, key=lambda c: -depth[c])[:2]


def _spine_path(spine_root, children, heads, subtree, up) -> list[int]:
    """The spine's main path: at each fork follow the child whose bones lie most straight above."""
    path = [spine_root]
    while children[path[-1]]:
        here = heads[path[-1]]

        def upness(c, here=here):
            vec = heads[subtree[c]].mean(0) - here
            return float(vec @ up) / (np.linalg.norm(vec) or 1.0)
        path.append(max(children[path[-1]], key=upness))
    return path


def _facing(legs, heads, up) -> np.ndarray:
    """Unit forward: the toes' direction (the last bones of legs with 4+ bones) flattened against ``up``, else
    the armature's -Y."""
    forward = np.zeros(3)
    for leg in legs:
        if len(leg) >= 4:
            vec = heads[leg[-1]] - heads[leg[-2]]
            forward += vec - up * (vec @ up)
    if np.linalg.norm(forward) < 1e-9:
        forward = np.array([0.0, -1.0, 0.0])
        forward -= up * (forward @ up)
    forward /= np.linalg.norm(forward)
    return forward


def _assign_torso(result, names, heads, path, arm_branch, arm_roots, pelvis, up) -> None:
    """Spine, neck and head on the spine's main path: the spine up to the arms' branch point, the head where
    the path is about 1.6 times as high above the pelvis as the arms' roots (SMPL-X: 1.63), the neck between."""
    torso = path[:arm_branch + 1]
    above = path[arm_branch + 1:]
    result.spine = [names[b] for b in torso]
    if above:
        shoulder_height = np.mean([_height(heads[r], heads[pelvis], up) for r in arm_roots])
        head_index = min(range(len(above)), key=lambda k: abs(_height(heads[above[k]], heads[pelvis], up)
                                                              - 1.63 * shoulder_height))
        result.neck = [names[b] for b in above[:head_index]]
        result.roles["head"] = names[above[head_index]]


def _topological(parents) -> list[int]:
    children: dict[int, list[int]] = {}
    roots = []
    for bone, parent in enumerate(parents):
        (children.setdefault(parent, []) if parent >= 0 else roots).append(bone)
    order, stack = [], list(reversed(roots))
    while stack:
        bone = stack.pop(0)
        order.append(bone)
        stack.extend(children.get(bone, []))
    return order


def _height(point, origin, up) -> float:
    return float((point - origin) @ up)


def _main_chain(root, children, size, stop_at_fingers=False) -> list[int]:
    chain = [root]
    while children[chain[-1]]:
        kids = children[chain[-1]]
        if stop_at_fingers and len([k for k in kids if size[k] >= 2]) >= 2:
            break
        chain.append(max(kids, key=lambda c: size[c]))
    return chain


def _assign_arm(result, side, chain, children, heads, names, up, forward, size, depth) -> None:
    hand = chain[-1]
    has_fingers = len(children[hand]) >= 2
    if not has_fingers and len(chain) >= 4:
        # A chain ending without fingers: a tiny last bone is an end marker, not the hand.
        last, before = chain[-1], chain[-2]
        if np.linalg.norm(heads[last] - heads[before]) < 0.35 * np.linalg.norm(heads[before] - heads[chain[-3]]):
            chain = chain[:-1]
            hand = chain[-1]
    body = chain[:-1]
    if len(body) < 2:
        return
    shoulder_pos, hand_pos = heads[body[0]], heads[hand]
    # A collar: the first bone when it is short compared with the whole arm and there are 3+ bones.
    arm_length = np.linalg.norm(hand_pos - shoulder_pos)
    collar = None
    if len(body) >= 3 and np.linalg.norm(heads[body[1]] - heads[body[0]]) < 0.3 * arm_length:
        collar, body = body[0], body[1:]
    upper = body[0]
    middle = 0.5 * (heads[upper] + hand_pos)
    fore = min(body[1:], key=lambda b: np.linalg.norm(heads[b] - middle)) if len(body) > 1 else None
    if collar is not None:
        result.roles[f"{side}_collar"] = names[collar]
    result.roles[f"{side}_shoulder"] = names[upper]
    if fore is not None:
        result.roles[f"{side}_elbow"] = names[fore]
    result.roles[f"{side}_wrist"] = names[hand]
    if not has_fingers:
        return
    # Finger chains: under the hand, through palm bones (a child with exactly one child chain).
    chains = []
    for kid in children[hand]:
        finger = [kid]
        while children[finger[-1]]:
            finger.append(max(children[finger[-1]], key=lambda c: size[c]))
        if len(finger) >= 2:
            chains.append(finger)
    if len(chains) < 2:
        return
    bases = np.array([heads[c[-3] if len(c) >= 3 else c[0]] for c in chains])
    hand_dir = np.mean(bases, axis=0) - heads[hand]
    hand_dir /= np.linalg.norm(hand_dir) or 1.0
    across = forward - hand_dir * (forward @ hand_dir)
    # Thumb: the base furthest from the others' mean, measured across the hand.
    spread = [np.linalg.norm(bases[k] - np.delete(bases, k, 0).mean(0)) for k in range(len(chains))]
    thumb = int(np.argmax(spread)) if len(chains) >= 3 else None
    others = [k for k in range(len(chains)) if k != thumb]
    others.sort(key=lambda k: -(bases[k] @ across))  # index is furthest forward in a T-pose
    labels = {5: ("index", "middle", "ring", "pinky"), 4: ("index", "middle", "pinky"), 3: ("index", "middle"),
              2: ("index", "middle")}.get(len(chains), ("index", "middle", "ring", "pinky"))
    assigned = list(zip(labels, others, strict=False))
    if thumb is not None:
        assigned.append(("thumb", thumb))
    for finger, k in assigned:
        bones = chains[k]
        phalanges = bones[:3]
        if len(bones) >= 4 and finger != "thumb":
            # Four bones: a metacarpal (starting at the hand) then three phalanges, or three phalanges and an
            # end marker (the first starting at the knuckle, far from the hand's head).
            near = np.linalg.norm(heads[bones[0]] - heads[hand]) < 0.5 * np.linalg.norm(heads[bones[1]]
                                                                                          - heads[hand])
            phalanges = bones[1:4] if near else bones[:3]
        for number, bone in enumerate(phalanges, 1):
            result.roles[f"{side}_{finger}{number}"] = names[bone]


def _assign_leg(result, side, leg, heads, names, up) -> None:
    if len(leg) < 3:
        return
    # Thigh: the first bone pointing mostly down.
    thigh_index = 0
    for k in range(len(leg) - 1):
        vec = heads[leg[k + 1]] - heads[leg[k]]
        if -(vec @ up) > 0.7 * (np.linalg.norm(vec) or 1.0) and np.linalg.norm(vec) > 1e-6:
            thigh_index = k
            break
    chain = leg[thigh_index:]
    top = _height(heads[chain[0]], 0 * heads[0], up)
    bottom = min(_height(heads[b], 0 * heads[0], up) for b in chain)
    span = top - bottom or 1.0
    foot_index = next((k for k, b in enumerate(chain) if k >= 2 and _height(heads[b], 0 * heads[0], up)
                       < bottom + 0.15 * span), len(chain) - 1)
    middle = top - 0.5 * span
    knee_index = min(range(1, foot_index), key=lambda k: abs(_height(heads[chain[k]], 0 * heads[0], up) - middle)) \
        if foot_index > 1 else None
    result.roles[f"{side}_hip"] = names[chain[0]]
    if knee_index is not None:
        result.roles[f"{side}_knee"] = names[chain[knee_index]]
    result.roles[f"{side}_ankle"] = names[chain[foot_index]]
    if foot_index + 1 < len(chain):
        result.roles[f"{side}_foot"] = names[chain[foot_index + 1]]


# ---------------------------------------------------------------------------------------------------
# Helper bones


_HELPER_WORDS = (("twist", "twist bone"), ("bend", "bend helper"), ("roll", "roll bone"), ("pole", "IK pole"),
                 ("target", "IK target"), ("ik", "IK control"), ("mch", "mechanism"), ("org", "original (Rigify)"),
                 ("def", "deform-only"), ("tweak", "tweak control"), ("end", "end marker"), ("nub", "end marker"),
                 ("tip", "end marker"), ("top", "end marker"), ("metacarpal", "metacarpal"), ("palm", "palm"),
                 ("hair", "hair/cloth"), ("skirt", "hair/cloth"), ("cloth", "hair/cloth"), ("prop", "prop"),
                 ("weapon", "prop"), ("root", "root"), ("socket", "attachment"))


def classify_helper(name: str) -> str:
    """Why an unmapped bone is left alone, in a few words (for the panel)."""
    _, tokens = split_name(name)
    joined = "".join(tokens)
    for word, label in _HELPER_WORDS:
        if word in tokens or (len(word) > 3 and word in joined):
            return label
    return "not part of the body map"


# ---------------------------------------------------------------------------------------------------
# From a map to what the retarget needs

# Roles whose bone head is a good SMPL-X joint landmark for the alignment fit (independent of A/T pose).
_ANCHOR_ROLES = ("pelvis", "head", *(f"{side}_{base}" for side in SIDES
                                      for base in ("hip", "knee", "ankle", "shoulder")))


def _primary_child(role: str) -> str | None:
    for side in SIDES:
        if role.startswith(side + "_"):
            base = role[len(side) + 1:]
            nxt = {"collar": "shoulder", "shoulder": "elbow", "elbow": "wrist", "wrist": "middle1", "hip": "knee",
                   "knee": "ankle", "ankle": "foot"}.get(base)
            if nxt is None and base[:-1] in FINGERS and base[-1] in "12":
                nxt = f"{base[:-1]}{int(base[-1]) + 1}"
            return f"{side}_{nxt}" if nxt else None
    return None


def _control_of(name: str, index: dict[str, int], joint_of) -> int | None:
    """The driven control an ``ORG-`` (or ``DEF-``) bone follows: ``ORG-shoulder.L`` -> ``shoulder.L``,
    ``DEF-hand.L`` -> ``hand_fk.L`` (in FK mode the original and deform bones follow the FK chain)."""
    if not name.startswith(("ORG-", "DEF-")):
        return None
    base = name[4:]
    stem, dot, side = base.rpartition(".")
    for candidate in (base, f"{stem}_fk{dot}{side}" if dot else f"{base}_fk"):
        if candidate in index and joint_of[index[candidate]] >= 0:
            return index[candidate]
    return None


def _effective_parents(names, parents, joint_of) -> list[int]:
    """Parents as the pose sees them, for rigs with a mechanism layer (Rigify: ``ORG-``/``MCH-`` bones).

    A control such as ``upper_arm_fk.L`` hangs below ``MCH-upper_arm_parent.L`` below ``ORG-shoulder.L``,
    which copies the ``shoulder.L`` control: with those helpers at rest, the control moves as a child of
    the nearest driven ancestor, where ``ORG-<name>`` stands for the control ``<name>``. Rigs without
    such helpers keep their parents.
    """
    index = {n: i for i, n in enumerate(names)}
    if not any(n.startswith(("ORG-", "MCH-")) for n in names):
        return parents
    out = list(parents)
    for bone, joint in enumerate(joint_of):
        if joint < 0:
            continue
        node = parents[bone]
        while node >= 0:
            if joint_of[node] >= 0:
                break
            control = _control_of(names[node], index, joint_of)
            if control is not None:
                node = control
                break
            node = parents[node]
        if node < bone:  # parents before children, as the retarget passes need
            out[bone] = node
    return out


# Segments whose twist is shared with twist bones: (main role, end role, own twist?). The upper arm and the
# thigh twist along themselves; the forearm carries the hand's twist (the radius turns about the ulna).
_TWIST_SEGMENTS = tuple((f"{side}_{main}", f"{side}_{end}", own) for side in SIDES
                        for main, end, own in (("shoulder", "elbow", True), ("elbow", "wrist", False),
                                               ("hip", "knee", True)))


def _is_twist_name(name: str) -> bool:
    """``lowerarm_twist_01_l``, ``CC_Base_L_UpperarmTwist01``, ``lShldrTwist``, Rigify's ``DEF-forearm.L.001``."""
    _, tokens = split_name(name)
    return "twist" in "".join(tokens) or (bool(tokens) and tokens[-1].isdigit() and len(tokens[-1]) == 3
                                          and name.startswith("DEF-"))


def _twist_bones(names, parents, heads, joint_of, bone_of):
    """Twist bones of the upper arms, forearms and thighs with their share, or None when the rig has none.

    A twist bone is an unmapped bone with a twist name whose nearest mapped ancestor is the segment's main
    bone; its ``fraction`` is its head's position along the segment (main head 0, end head 1). A main bone
    whose twist bone is inline (the end bone hangs below it: Daz ``lShldrTwist``, Rigify ``DEF-thigh.L.001``)
    gets an entry of its own with fraction 0 when it twists along itself. Entries: ``retarget._share_twist``.
    """
    ancestry = _ancestry(parents)
    out = [(-1, -1, 0.0, False)] * len(names)
    found = False
    for main_role, end_role, own in _TWIST_SEGMENTS:
        main, end = bone_of(main_role), bone_of(end_role)
        if main < 0 or end < 0:
            continue
        span = heads[end] - heads[main]
        length2 = float(span @ span)
        if length2 < 1e-12:
            continue
        for bone, name in enumerate(names):
            if joint_of[bone] >= 0 or not _is_twist_name(name):
                continue
            node = parents[bone]
            while node >= 0 and joint_of[node] < 0:
                node = parents[node]
            if node != main:
                continue
            low = 0.0 if own else 0.1
            fraction = float(np.clip((heads[bone] - heads[main]) @ span / length2, low, 0.9))
            out[bone] = (main, end, fraction, own)
            found = True
            if own and bone in ancestry[end]:
                out[main] = (main, end, 0.0, True)
    return tuple(out) if found else None


@dataclass
class _RestFields:
    """The per-bone fields of ``retarget.ArmatureRest`` while ``rest_from_map``'s passes fill them in.

    -1 means none: no driving SMPL-X joint, no blend, no anchor, no aim bone, no side bones.
    """

    joint_of: list[int]
    blend_joint: list[int]
    blend_weight: list[float]
    anchor: list[int]
    aim: list[int]
    aim_dir: np.ndarray  # (B, 3) SMPL-X rest direction the aim bone should lie along
    side_bones: list[tuple[int, int]]
    side_dir: np.ndarray  # (B, 3) SMPL-X rest direction from the first side bone to the second
    spine_span: list[tuple[float, float]]

    @classmethod
    def empty(cls, count: int) -> _RestFields:
        return cls(joint_of=[-1] * count, blend_joint=[-1] * count, blend_weight=[0.0] * count,
                   anchor=[-1] * count, aim=[-1] * count, aim_dir=np.zeros((count, 3)),
                   side_bones=[(-1, -1)] * count, side_dir=np.zeros((count, 3)),
                   spine_span=[(0.0, 0.0)] * count)


# Roles whose only child may be an end bone (HeadTop_End, a finger tip) that shows where the segment points.
_END_AIM_ROLES = ("head",) + tuple(f"{s}_{x}" for s in SIDES for x in ("foot", "wrist", *(f"{f}3" for f in FINGERS)))


def rest_from_map(names, parents, rest_matrices, connected, bone_map: BoneMap, rest_joints=None):
    """The ``retarget.ArmatureRest`` of a rig with a map: drivers, chain blends, aims and anchors.

    Passes, in order: single-bone roles (driver, anchor, aim, side bones), the spine chain (blends and aims
    resampled along SMPL-X's spine), the neck chain, twist bones, then the parents with unmapped bones
    skipped.

    Args:
        names, parents: bones, parents first (parent index -1 for roots).
        rest_matrices: (B, 4, 4) ``bone.matrix_local``.
        connected: (B,) ``bone.use_connect``.
        bone_map: which bone plays which role (``identify`` or the user's).
        rest_joints: (55, 3) SMPL-X rest joints (default: the built-in skeleton).

    Raises:
        ValueError: a mapped bone does not exist.
    """
    from . import retarget
    from .backend.motion.skeleton import JOINT_INDEX, REST_JOINTS

    joints = np.asarray(REST_JOINTS if rest_joints is None else rest_joints, dtype=np.float64)
    names = [str(n) for n in names]
    index = {n: i for i, n in enumerate(names)}
    heads = np.asarray(rest_matrices, dtype=np.float64)[:, :3, 3]
    for role, bone in bone_map.pairs():
        if bone not in index:
            raise ValueError(f"The bone map names bone '{bone}' for the {role_label(role)}, but the armature "
                             "has no such bone; fix the map in the Bone Map panel.")
    fields = _RestFields.empty(len(names))
    children = _children_of(parents)

    def bone_of(role):
        found = bone_map.bones_of(role)
        return index[found[0]] if found else -1

    for role, bone_name in bone_map.roles.items():
        _role_pass(fields, role, index[bone_name], bone_map, children, joints, JOINT_INDEX, bone_of)
    spine_bones = [index[n] for n in bone_map.spine]
    neck_bones = [index[n] for n in bone_map.neck]
    head_bone = bone_of("head")
    if spine_bones:
        end = neck_bones[0] if neck_bones else head_bone
        _spine_pass(fields, spine_bones, end, heads, joints, JOINT_INDEX)
    _neck_pass(fields, neck_bones, head_bone, joints, JOINT_INDEX)
    twist_share = _twist_bones(names, [int(p) for p in parents], heads, fields.joint_of, bone_of)
    parents = _effective_parents(names, [int(p) for p in parents], fields.joint_of)
    return retarget.ArmatureRest(
        names=tuple(names), parents=tuple(parents),
        rest_matrices=np.asarray(rest_matrices, dtype=np.float64), joint_of_bone=tuple(fields.joint_of),
        connected=tuple(bool(c) for c in connected), blend_joint=tuple(fields.blend_joint),
        blend_weight=tuple(fields.blend_weight), anchor_of_bone=tuple(fields.anchor), aim_bone=tuple(fields.aim),
        aim_direction=fields.aim_dir, side_bones=tuple(fields.side_bones), side_direction=fields.side_dir,
        spine_span=tuple(fields.spine_span) if bone_map.spine and len(bone_map.spine) != 3 else None,
        twist_share=twist_share)


def _role_pass(fields: _RestFields, role: str, b: int, bone_map: BoneMap, children, joints, joint_index,
               bone_of) -> None:
    """One single-bone role: its driving joint, anchor, the bone it aims at and the side bones that fix its roll.

    Runs before the chain passes; reads ``fields.joint_of`` of the roles already done (an unmapped only child
    counts as an end bone).
    """
    joint = joint_index[role]
    fields.joint_of[b] = joint
    if role in _ANCHOR_ROLES:
        fields.anchor[b] = joint
    child_role = _primary_child(role)
    child = bone_of(child_role) if child_role else -1
    if child >= 0:
        fields.aim[b], fields.aim_dir[b] = child, joints[joint_index[child_role]] - joints[joint]
    elif role == "pelvis":
        _pelvis_aim(fields, b, joints, joint_index, bone_of)
    elif len(children[b]) == 1 and fields.joint_of[children[b][0]] < 0 and not bone_map.bones_of(
            child_role or "") and role in _END_AIM_ROLES:
        fields.aim[b], fields.aim_dir[b] = children[b][0], _end_bone_direction(role, joint, joints, joint_index)
    if role.endswith("_wrist") and fields.aim[b] >= 0:
        _hand_sides(fields, b, role.split("_")[0], joints, joint_index, bone_of)


def _pelvis_aim(fields: _RestFields, b: int, joints, joint_index, bone_of) -> None:
    """The pelvis aims at the first spine bone; its roll comes from the right hip towards the left hip."""
    first = bone_of("spine")
    if first < 0:
        return
    fields.aim[b], fields.aim_dir[b] = first, joints[joint_index["spine1"]] - joints[0]
    left, right = bone_of("left_hip"), bone_of("right_hip")
    if left >= 0 and right >= 0:
        fields.side_bones[b] = (right, left)
        fields.side_dir[b] = joints[joint_index["left_hip"]] - joints[joint_index["right_hip"]]


def _end_bone_direction(role: str, joint: int, joints, joint_index) -> np.ndarray:
    """Where a segment ending in an end bone points (SMPL-X axes): the head up, toes forward, a hand without
    fingers towards SMPL-X's middle finger, a last phalanx straight on from the one before."""
    if role.endswith("_foot"):
        return np.array([0.0, 0.0, 1.0])
    if role.endswith("_wrist"):
        side = role.split("_")[0]
        return joints[joint_index[f"{side}_middle1"]] - joints[joint]
    if role == "head":
        return np.array([0.0, 1.0, 0.0])
    return joints[joint] - joints[joint_index[role[:-1] + "2"]]


def _hand_sides(fields: _RestFields, b: int, side: str, joints, joint_index, bone_of) -> None:
    """A hand's roll: from the index knuckle towards the pinky's (the ring's when there is no pinky)."""
    first, last = bone_of(f"{side}_index1"), bone_of(f"{side}_pinky1")
    last_role = f"{side}_pinky1"
    if last < 0:
        last, last_role = bone_of(f"{side}_ring1"), f"{side}_ring1"
    if first >= 0 and last >= 0:
        fields.side_bones[b] = (first, last)
        fields.side_dir[b] = joints[joint_index[last_role]] - joints[joint_index[f"{side}_index1"]]


def _spine_pass(fields: _RestFields, spine_bones: list[int], end: int, heads, joints, joint_index) -> None:
    """SMPL-X spine1..3 (and neck) resampled at the rig's spine bones' positions along their chain.

    Each rig bone takes the SMPL-X joint(s) whose segment midpoints bracket its own midpoint (as fractions of
    the chain length), blended linearly; it aims at the next bone (``end``: the first neck bone or the head,
    -1 for none) along the SMPL-X polyline between the same fractions.
    """
    points = [heads[b] for b in spine_bones] + ([heads[end]] if end >= 0 else [])
    smplx_names = ("spine1", "spine2", "spine3", "neck")
    smplx_points = np.array([joints[joint_index[n]] for n in smplx_names])
    smplx_len = np.linalg.norm(np.diff(smplx_points, axis=0), axis=1)
    smplx_cum = np.r_[0.0, np.cumsum(smplx_len)] / smplx_len.sum()
    smplx_mid = 0.5 * (smplx_cum[:-1] + smplx_cum[1:])
    if len(points) == len(spine_bones) + 1:
        rig_len = np.linalg.norm(np.diff(np.array(points), axis=0), axis=1)
    else:  # no neck and no head: equal shares
        rig_len = np.ones(len(spine_bones))
    rig_cum = np.r_[0.0, np.cumsum(rig_len)] / max(rig_len.sum(), 1e-12)

    def smplx_point(fraction):
        k = int(np.clip(np.searchsorted(smplx_cum, fraction, side="right") - 1, 0, 2))
        w = (fraction - smplx_cum[k]) / smplx_len[k] * smplx_len.sum()
        return smplx_points[k] + w * (smplx_points[k + 1] - smplx_points[k])

    for k, b in enumerate(spine_bones):
        mid = 0.5 * (rig_cum[k] + rig_cum[k + 1])
        seg = int(np.clip(np.searchsorted(smplx_mid, mid, side="right") - 1, 0, 2))
        if mid <= smplx_mid[0]:
            first, second, weight = 0, 0, 0.0
        elif seg >= 2:
            first, second, weight = 2, 2, 0.0
        else:
            first, second = seg, seg + 1
            weight = float((mid - smplx_mid[seg]) / (smplx_mid[seg + 1] - smplx_mid[seg]))
        fields.joint_of[b] = joint_index[smplx_names[first]]
        fields.blend_joint[b] = joint_index[smplx_names[second]]
        fields.blend_weight[b] = weight
        nxt = spine_bones[k + 1] if k + 1 < len(spine_bones) else end
        fields.spine_span[b] = (float(rig_cum[k]), float(rig_cum[k + 1]))
        if nxt >= 0:
            fields.aim[b] = nxt
            fields.aim_dir[b] = smplx_point(rig_cum[k + 1]) - smplx_point(rig_cum[k])


def _neck_pass(fields: _RestFields, neck_bones: list[int], head_bone: int, joints, joint_index) -> None:
    """Every neck bone is driven by SMPL-X's neck, the first one anchored there; each aims at the next (the
    last at the head) along SMPL-X's neck -> head."""
    for k, b in enumerate(neck_bones):
        fields.joint_of[b] = joint_index["neck"]
        if k == 0:
            fields.anchor[b] = joint_index["neck"]
        nxt = neck_bones[k + 1] if k + 1 < len(neck_bones) else head_bone
        if nxt >= 0:
            fields.aim[b], fields.aim_dir[b] = nxt, joints[joint_index["head"]] - joints[joint_index["neck"]]

