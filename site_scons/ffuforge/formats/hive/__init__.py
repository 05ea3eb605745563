"""Offline Windows registry hives (REGF): a deterministic writer and a hostile-input-safe reader.

Why our own: no maintained Python library writes REGF, and hivex (C; Debian's python3-hivex
binds the system interpreter, not our venv) can only edit a hive that already exists — it has no
"new hive" call, keeps whatever layout and free space the seed file has, and lays out cells in
allocation order — so its bytes depend on the order packages were merged. Here the bytes
depend only on the set of keys and values.

Layout rules (all observable in the output, all chosen for determinism):
* every key, the first hbin and the base block carry the FILETIME of ``timestamp`` (a Unix time,
  SOURCE_DATE_EPOCH); both base-block sequence numbers are 1; format version 1.5;
* cells are laid out depth first: key node, value list, each value and its data, subkey index,
  then the subkeys; a bin is 4 KiB unless one cell needs more; the tail of a bin is one free cell;
* subkeys are indexed by ``lh`` leaves sorted by upper-cased UTF-16 name (Windows binary-searches
  them); a key with more than ``LEAF_MAX`` subkeys gets an ``ri`` root over several leaves;
* values are written sorted the same way (default value first) rather than in insertion order,
  so the result does not depend on the order packages are installed;
* data of at most 4 bytes is stored in the value cell, more than 16344 bytes as ``db`` big data;
* names are stored compressed (one byte per character) only when pure ASCII, else UTF-16LE;
  case-insensitive matching uses the Unicode simple upper-case mapping per character;
* no class names; by default one ``sk`` cell shared by every key: owner Administrators, group
  SYSTEM, DACL granting KEY_ALL_ACCESS to SYSTEM and Administrators and KEY_READ to Users (all
  container-inherit). This is ffuforge's choice, not Windows' skeleton (Windows' own keys are
  TrustedInstaller-owned with WRP descriptors and inherited ACEs). A key given its own descriptor
  (:meth:`HiveBuilder.set_key_security`) points to an ``sk`` cell shared by every key with the
  same bytes, placed after the first such key (depth first); all ``sk`` cells form one
  flink/blink ring in that order, each with the count of keys referring to it, as REGF's
  ``CM_KEY_SECURITY`` list requires. Keys below a key given a descriptor inherit its
  container-inheritable ACEs as the registry gives them to a new key (``HiveBuilder._descriptors``).

``hive_for_key`` maps a full ``HKEY_...`` path to one of the offline hive files.

The package: :mod:`.structs` (constants, binary structures, names, security descriptor, hive
paths), :mod:`.writer` (:class:`HiveBuilder`) and :mod:`.reader` (:func:`read_hive`,
:func:`parse_hive`); this module re-exports their public API.
"""

from __future__ import annotations

from .reader import (
    DEFAULT_READ_MAX,
    Hive,
    RegKey,
    RegValue,
    parse_hive,
    read_hive,
)
from .structs import (
    ACE,
    ACL_HEADER,
    BASE_BLOCK,
    BIG_DATA,
    BIG_DATA_SEGMENT,
    BIN_HEADER_SIZE,
    CELL_SIZE,
    CONTAINER_INHERIT_ACE,
    EPOCH_DELTA,
    HASH_LEAF,
    HBIN_HEADER,
    HIVES,
    INDEX_ROOT,
    KEY_ALL_ACCESS,
    KEY_COMP_NAME,
    KEY_HIVE_ENTRY,
    KEY_NO_DELETE,
    KEY_READ,
    LEAF_MAX,
    MAX_DEPTH,
    MAX_KEY_NAME,
    MAX_SEGMENTS,
    MAX_VALUE_NAME,
    NIL,
    NK,
    NK_P,
    NK_SIZE,
    OFFSET_LIST,
    PAGE,
    SD_HEADER,
    SE_DACL_PRESENT,
    SE_SELF_RELATIVE,
    SID,
    SID_ADMINISTRATORS,
    SID_SYSTEM,
    SID_USERS,
    SK,
    SK_SIZE,
    VALUE_COMP_NAME,
    VK,
    VK_P,
    VK_SIZE,
    checksum,
    default_security_descriptor,
    filetime,
    hive_for_key,
    name_hash,
    upcase,
)
from .writer import (
    HiveBuilder,
)

__all__ = [
    "PAGE",
    "BIN_HEADER_SIZE",
    "BIG_DATA_SEGMENT",
    "MAX_SEGMENTS",
    "LEAF_MAX",
    "MAX_KEY_NAME",
    "MAX_VALUE_NAME",
    "MAX_DEPTH",
    "NIL",
    "EPOCH_DELTA",
    "KEY_HIVE_ENTRY",
    "KEY_NO_DELETE",
    "KEY_COMP_NAME",
    "VALUE_COMP_NAME",
    "HIVES",
    "BASE_BLOCK",
    "HBIN_HEADER",
    "CELL_SIZE",
    "NK",
    "NK_SIZE",
    "VK",
    "VK_SIZE",
    "HASH_LEAF",
    "INDEX_ROOT",
    "OFFSET_LIST",
    "BIG_DATA",
    "SK",
    "SK_SIZE",
    "SID",
    "ACE",
    "ACL_HEADER",
    "SD_HEADER",
    "NK_P",
    "VK_P",
    "checksum",
    "upcase",
    "name_hash",
    "filetime",
    "KEY_ALL_ACCESS",
    "KEY_READ",
    "SE_DACL_PRESENT",
    "SE_SELF_RELATIVE",
    "CONTAINER_INHERIT_ACE",
    "SID_SYSTEM",
    "SID_ADMINISTRATORS",
    "SID_USERS",
    "default_security_descriptor",
    "hive_for_key",
    "DEFAULT_READ_MAX",
    "Hive",
    "RegKey",
    "RegValue",
    "parse_hive",
    "read_hive",
    "HiveBuilder",
]
