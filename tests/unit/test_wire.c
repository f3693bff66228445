/*
 * test_wire.c - wire_decode, table-driven.
 *
 * Inputs are written in the msgpack notation of tests/unit/wiretext.h; a
 * decoded batch is rendered as one line of text (wiretext_dump) and
 * compared with the expected line, so every field, bit and unknown slot is
 * checked.  The encoder's tests are in test_wire_encode.c.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "event.h"
#include "unit.h"
#include "wire.h"
#include "wiretext.h"

/* ---- decode cases ---------------------------------------------------- */

#define TS "1700000000.0"
#define T16 "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]"

struct dcase {
    const char *name;
    int sglang;
    const char *in;
    const char *want;
};

static const struct dcase dcases[] = {
    /* Batch layouts (docs/protocol.md#batches). */
    {"2-element batch (v0.9.0)", 0,
     "[" TS ", [[\"BlockStored\",[1,2],nil,[1,2,3,4,5,6,7,8],4,nil],"
     "[\"BlockRemoved\",[1]],[\"AllBlocksCleared\"]]]",
     "ts=1700000000 rank=nil; 0:BlockStored block_hashes=[1,2] "
     "parent_block_hash=nil token_ids=[1,2,3,4,5,6,7,8] block_size=4 "
     "lora_id=nil; 1:BlockRemoved block_hashes=[1]; 2:AllBlocksCleared"},
    {"3-element batch, rank 1, medium", 0,
     "[" TS ", [[\"BlockStored\",[11289480438024683923],nil,[10,11,12,13],4,"
     "nil,\"GPU\"],[\"BlockRemoved\",[11289480438024683923],\"GPU\"]], 1]",
     "ts=1700000000 rank=1; 0:BlockStored block_hashes=[11289480438024683923] "
     "parent_block_hash=nil token_ids=[10,11,12,13] block_size=4 lora_id=nil "
     "medium='GPU'; 1:BlockRemoved block_hashes=[11289480438024683923] "
     "medium='GPU'"},
    {"batch with 4 elements: extra ignored", 0,
     "[" TS ", [[\"AllBlocksCleared\"]], 0, \"extra\", {\"a\":[1]}]",
     "ts=1700000000 rank=0; 0:AllBlocksCleared"},
    {"batch rank nil", 0, "[" TS ", [], nil]", "ts=1700000000 rank=nil"},
    {"batch rank negative", 0, "[" TS ", [], -1]", "ts=1700000000 rank=-1"},
    {"ts integer accepted", 0, "[1700000000, []]", "ts=1700000000 rank=nil"},
    {"ts float32 accepted", 0, "[x\"ca 3f c0 00 00\", []]", "ts=1.5 rank=nil"},
    {"ts negative int accepted", 0, "[-2, []]", "ts=-2 rank=nil"},
    {"map batch with data_parallel_rank", 0,
     "{\"ts\":" TS ",\"events\":[{\"type\":\"BlockRemoved\","
     "\"block_hashes\":[9223372036854775809],\"medium\":\"GPU\","
     "\"group_idx\":0}],\"data_parallel_rank\":0}",
     "ts=1700000000 rank=0; 0:BlockRemoved block_hashes=[9223372036854775809] "
     "medium='GPU' group_idx=0"},
    {"map batch without rank", 0,
     "{\"ts\":" TS ",\"events\":[{\"type\":\"AllBlocksCleared\"}]}",
     "ts=1700000000 rank=nil; 0:AllBlocksCleared"},
    {"map batch attn_dp_rank, type key and others ignored", 0,
     "{\"type\":\"EventBatch\",\"events\":[],\"attn_dp_rank\":3,"
     "[1,2]:{\"x\":1},\"ts\":2.5}",
     "ts=2.5 rank=3"},
    {"map batch duplicate rank: last wins", 0,
     "{\"ts\":1.0,\"events\":[],\"attn_dp_rank\":3,"
     "\"data_parallel_rank\":nil}",
     "ts=1 rank=nil"},

    /* Envelope errors: the whole batch. */
    {"empty payload", 0, "", "FAIL truncated msgpack"},
    {"payload is an int", 0, "5", "FAIL batch is not an array or map"},
    {"batch of 1", 0, "[" TS "]", "FAIL batch array has fewer than 2 elements"},
    {"ts is a string", 0, "[\"now\", []]", "FAIL ts is not a number"},
    {"ts nil", 0, "[nil, []]", "FAIL ts is not a number"},
    {"events not an array", 0, "[" TS ", {}]", "FAIL events is not an array"},
    {"rank is a string", 0, "[" TS ", [], \"0\"]",
     "FAIL dp rank is not an integer or nil"},
    {"rank is a float", 0, "[" TS ", [], 1.0]",
     "FAIL dp rank is not an integer or nil"},
    {"map batch without ts", 0, "{\"events\":[]}", "FAIL ts missing"},
    {"map batch without events", 0, "{\"ts\":1.0}", "FAIL events missing"},
    {"bare map", 0, "{\"not\":\"a batch\"}", "FAIL ts missing"},
    {"trailing bytes", 0, "[" TS ", []] 0", "FAIL trailing bytes after batch"},
    {"truncated after header", 0, "x\"93\"",
     "FAIL declared size exceeds payload"},
    {"truncated inside hash", 0,
     "x\"93 cb 41 d9 54 fc 40 00 00 00 91 92\" \"BlockRemoved\" x\"91 cf "
     "11 22 33 44 55\"",
     "FAIL truncated msgpack"},
    {"truncated inside unknown tag event", 0,
     "x\"93 cb 41 d9 54 fc 40 00 00 00 91 92\" \"Foo\" x\"92 01\"",
     "FAIL declared size exceeds payload"},
    {"truncated inside bad event", 0,
     "x\"92 cb 41 d9 54 fc 40 00 00 00 91 92 05 92 01\"",
     "FAIL declared size exceeds payload"},
    {"truncated str inside bad event", 0,
     "x\"92 cb 41 d9 54 fc 40 00 00 00 91 92 05 a5 41\"",
     "FAIL truncated msgpack"},
    {"events array32 claims 2^32-1", 0,
     "x\"92 cb 41 d9 54 fc 40 00 00 00 dd ff ff ff ff\"",
     "FAIL declared size exceeds payload"},
    {"map32 claims 2^32-1", 0, "x\"df ff ff ff ff\"",
     "FAIL declared size exceeds payload"},
    {"hashes array32 claims 2^31-1, 3 follow", 0,
     "x\"92 cb 41 d9 54 fc 40 00 00 00 91 92\" \"BlockRemoved\" "
     "x\"dd 7f ff ff ff 01 02 03\"",
     "FAIL declared size exceeds payload"},
    {"nested array32 headers", 0,
     "x\"dd 01 00 00 00 dd 01 00 00 00 dd 01 00 00 00 dd 01 00 00 00\"",
     "FAIL declared size exceeds payload"},
    {"byte c1", 0, "[" TS ", [x\"c1\"]]", "FAIL invalid msgpack byte"},
    {"str32 longer than payload", 0, "[" TS ", [x\"db 00 10 00 00 41\"]]",
     "FAIL truncated msgpack"},

    /* Legacy array events of every length. */
    {"BlockStored 12 slots", 0,
     "[" TS ", [[\"BlockStored\",[17134841764894605963],nil," T16
     ",16,nil,\"GPU\",nil,[nil],0,\"full_attention\",nil],"
     "[\"BlockRemoved\",[17134841764894605963],\"GPU\",0]], 0]",
     "ts=1700000000 rank=0; 0:BlockStored block_hashes=[17134841764894605963] "
     "parent_block_hash=nil token_ids=[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16] "
     "block_size=16 lora_id=nil medium='GPU' lora_name=nil extra_keys=x91c0 "
     "group_idx=0 kv_cache_spec_kind='full_attention' "
     "kv_cache_spec_sliding_window=nil; 1:BlockRemoved "
     "block_hashes=[17134841764894605963] medium='GPU' group_idx=0"},
    {"BlockStored 8 and 9 slots", 0,
     "[" TS ", [[\"BlockStored\",[1],2,[],0,7,\"CPU\",\"lora\"],"
     "[\"BlockStored\",[1],2,[],0,-7,nil,nil,[[\"a\",[\"mm\",-4]]]]]]",
     "ts=1700000000 rank=nil; 0:BlockStored block_hashes=[1] "
     "parent_block_hash=2 token_ids=[] block_size=0 lora_id=7 medium='CPU' "
     "lora_name='lora'; 1:BlockStored block_hashes=[1] parent_block_hash=2 "
     "token_ids=[] block_size=0 lora_id=-7 medium=nil lora_name=nil "
     "extra_keys=x9192a16192a26d6dfc"},
    {"BlockStored 14 slots: extra trailing unknowns", 0,
     "[" TS ", [[\"BlockStored\",[1],nil,[1],1,nil,nil,nil,nil,nil,nil,nil,"
     "\"x\",[1,2]]]]",
     "ts=1700000000 rank=nil; 0:BlockStored block_hashes=[1] "
     "parent_block_hash=nil token_ids=[1] block_size=1 lora_id=nil medium=nil "
     "lora_name=nil extra_keys=nil group_idx=nil kv_cache_spec_kind=nil "
     "kv_cache_spec_sliding_window=nil @12=xa178 @13=x920102"},
    {"fork shapes: slot type mismatches become @N", 0,
     "[" TS ", [[\"BlockStored\",[1],nil,[1],1,\"lora\",\"GPU\",5,\"k\","
     "[0,1],7,\"w\"]]]",
     "ts=1700000000 rank=nil; 0:BlockStored block_hashes=[1] "
     "parent_block_hash=nil token_ids=[1] block_size=1 medium='GPU' "
     "@5=xa46c6f7261 "
     "@7=x05 @8=xa16b @9=x920001 @10=x07 @11=xa177"},
    {"BlockRemoved extras", 0,
     "[" TS ", [[\"BlockRemoved\",[1],\"GPU\",0,\"x\",[1,2],nil]], 0, "
     "\"extra\"]",
     "ts=1700000000 rank=0; 0:BlockRemoved block_hashes=[1] medium='GPU' "
     "group_idx=0 @4=xa178 @5=x920102 @6=xc0"},
    {"BlockRemoved group_idx wrong type kept", 0,
     "[" TS ", [[\"BlockRemoved\",[1],5,-1]]]",
     "ts=1700000000 rank=nil; 0:BlockRemoved block_hashes=[1] @2=x05 @3=xff"},
    {"AllBlocksCleared extras", 0, "[" TS ", [[\"AllBlocksCleared\",1,nil]]]",
     "ts=1700000000 rank=nil; 0:AllBlocksCleared @1=x01 @2=xc0"},

    /* Event errors cost only the event. */
    {"BlockStored with 5 elements", 0,
     "[" TS ", [[\"BlockStored\",[1],nil,[1],1],[\"AllBlocksCleared\"]]]",
     "ts=1700000000 rank=nil; ERR event 0: BlockStored array has fewer than "
     "6 elements; 1:AllBlocksCleared"},
    {"BlockRemoved with 1 element", 0, "[" TS ", [[\"BlockRemoved\"]]]",
     "ts=1700000000 rank=nil; ERR event 0: BlockRemoved array has fewer than "
     "2 elements"},
    {"event is an int", 0, "[" TS ", [5, [\"AllBlocksCleared\"]]]",
     "ts=1700000000 rank=nil; ERR event 0: not an array or map; "
     "1:AllBlocksCleared"},
    {"event is empty array", 0, "[" TS ", [[]]]",
     "ts=1700000000 rank=nil; ERR event 0: empty array"},
    {"tag is an int", 0, "[" TS ", [[1,[1]]]]",
     "ts=1700000000 rank=nil; ERR event 0: tag is not a string"},
    {"tag is nil", 0, "[" TS ", [[nil,[1]]]]",
     "ts=1700000000 rank=nil; ERR event 0: tag is not a string"},
    {"map without type", 0, "[" TS ", [{\"block_hashes\":[1]}]]",
     "ts=1700000000 rank=nil; ERR event 0: no string type key"},
    {"map with nil type", 0, "[" TS ", [{\"type\":nil}]]",
     "ts=1700000000 rank=nil; ERR event 0: no string type key"},
    {"map with int key", 0, "[" TS ", [{\"type\":\"AllBlocksCleared\",1:2}]]",
     "ts=1700000000 rank=nil; ERR event 0: map key is not a string"},
    {"block_hashes is a string", 0,
     "[" TS ", [{\"type\":\"BlockRemoved\",\"block_hashes\":\"nope\"},"
     "[\"AllBlocksCleared\"]]]",
     "ts=1700000000 rank=nil; ERR event 0: block_hashes: wrong type; "
     "1:AllBlocksCleared"},
    {"block_size is a string", 0,
     "[" TS ", [{\"type\":\"BlockStored\",\"block_hashes\":[1],"
     "\"parent_block_hash\":nil,\"token_ids\":[1],\"block_size\":\"16\"}]]",
     "ts=1700000000 rank=nil; ERR event 0: block_size: wrong type"},
    {"block_size nil in array", 0,
     "[" TS ", [[\"BlockStored\",[1],nil,[1],nil,nil]]]",
     "ts=1700000000 rank=nil; ERR event 0: block_size: wrong type"},
    {"block_size negative", 0,
     "[" TS ", [[\"BlockStored\",[1],nil,[1],-1,nil]]]",
     "ts=1700000000 rank=nil; ERR event 0: block_size: wrong type"},
    {"token -1", 0, "[" TS ", [[\"BlockStored\",[1],nil,[1,-1],1,nil]]]",
     "ts=1700000000 rank=nil; ERR event 0: token_ids: token out of range"},
    {"token 2^32", 0,
     "[" TS ", [[\"BlockStored\",[1],nil,[4294967295,4294967296],1,nil]]]",
     "ts=1700000000 rank=nil; ERR event 0: token_ids: token out of range"},
    /* TensorRT-LLM's placeholder: FNV-1a-32("a") with the top bit set. */
    {"token is a str", 0, "[" TS ", [[\"BlockStored\",[1],nil,[\"a\"],1,nil]]]",
     "ts=1700000000 rank=nil; 0:BlockStored block_hashes=[1] "
     "parent_block_hash=nil token_ids=mixed[3826002220] block_size=1 "
     "lora_id=nil"},
    {"a str among tokens, and a token of another type", 0,
     "[" TS ", [[\"BlockStored\",[1],nil,[1,\"a\",true],1,nil]]]",
     "ts=1700000000 rank=nil; ERR event 0: token_ids: wrong type"},
    {"token_ids nil", 0, "[" TS ", [[\"BlockStored\",[1],nil,nil,1,nil]]]",
     "ts=1700000000 rank=nil; ERR event 0: token_ids: wrong type"},
    {"parent is a str", 0, "[" TS ", [[\"BlockStored\",[1],\"p\",[1],1,nil]]]",
     "ts=1700000000 rank=nil; ERR event 0: parent_block_hash: wrong type"},
    {"hash is a float", 0, "[" TS ", [[\"BlockRemoved\",[1.5]]]]",
     "ts=1700000000 rank=nil; ERR event 0: block_hashes: wrong type"},
    {"hash is bool", 0, "[" TS ", [[\"BlockRemoved\",[true]]]]",
     "ts=1700000000 rank=nil; ERR event 0: block_hashes: wrong type"},
    {"7-byte digest", 0, "[" TS ", [[\"BlockRemoved\",[h\"01020304050607\"]]]]",
     "ts=1700000000 rank=nil; ERR event 0: block_hashes: digest shorter than "
     "8 bytes"},
    {"7-byte parent digest", 0,
     "[" TS ", [[\"BlockStored\",[1],h\"01020304050607\",[1],1,nil]]]",
     "ts=1700000000 rank=nil; ERR event 0: parent_block_hash: digest shorter "
     "than 8 bytes"},
    {"map: optional key with wrong type fails the event", 0,
     "[" TS ", [{\"type\":\"BlockRemoved\",\"block_hashes\":[1],"
     "\"group_idx\":\"0\"}]]",
     "ts=1700000000 rank=nil; ERR event 0: group_idx: wrong type"},
    {"map: lora_id as uint above int64 fails", 0,
     "[" TS ", [{\"type\":\"BlockStored\",\"lora_id\":18446744073709551615}]]",
     "ts=1700000000 rank=nil; ERR event 0: lora_id: wrong type"},
    {"map: extra_keys must be array or nil", 0,
     "[" TS ", [{\"type\":\"BlockStored\",\"extra_keys\":5}]]",
     "ts=1700000000 rank=nil; ERR event 0: extra_keys: wrong type"},
    {"errors in the middle keep order", 0,
     "[" TS ", [[\"AllBlocksCleared\"], 7, [\"AllBlocksCleared\"]], 2]",
     "ts=1700000000 rank=2; 0:AllBlocksCleared; ERR event 1: not an array or "
     "map; 2:AllBlocksCleared"},

    /* Map events. */
    {"current vLLM map event", 0,
     "[" TS ", [{\"type\":\"BlockStored\",\"block_hashes\":"
     "[15760518052499183552],\"parent_block_hash\":nil,\"token_ids\":" T16
     ",\"block_size\":16,\"lora_id\":nil,\"medium\":\"GPU\","
     "\"lora_name\":nil,\"extra_keys\":[nil],\"group_idx\":0,"
     "\"kv_cache_spec_kind\":\"full_attention\"}], 0]",
     "ts=1700000000 rank=0; 0:BlockStored block_hashes=[15760518052499183552] "
     "parent_block_hash=nil token_ids=[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16] "
     "block_size=16 lora_id=nil medium='GPU' lora_name=nil extra_keys=x91c0 "
     "group_idx=0 kv_cache_spec_kind='full_attention'"},
    {"map event key order free, type last", 0,
     "[" TS ", [{\"medium\":\"CPU\",\"block_hashes\":[3],"
     "\"type\":\"BlockRemoved\"}]]",
     "ts=1700000000 rank=nil; 0:BlockRemoved block_hashes=[3] medium='CPU'"},
    {"map event duplicate type: last wins", 0,
     "[" TS ", [{\"type\":\"BlockStored\",\"block_hashes\":[3],"
     "\"type\":\"BlockRemoved\"}]]",
     "ts=1700000000 rank=nil; 0:BlockRemoved block_hashes=[3]"},
    {"map event duplicate type: unknown last wins", 0,
     "[" TS ", [{\"type\":\"BlockRemoved\",\"block_hashes\":[3],"
     "\"type\":\"BlockMoved\"}]]",
     "ts=1700000000 rank=nil; SKIP BlockMoved*1"},
    {"map event duplicate type: known after unknown", 0,
     "[" TS ", [{\"type\":\"Foo\",\"block_hashes\":[3],"
     "\"type\":\"BlockRemoved\"}]]",
     "ts=1700000000 rank=nil; 0:BlockRemoved block_hashes=[3]"},
    {"map event duplicate key: last wins", 0,
     "[" TS ", [{\"type\":\"BlockRemoved\",\"medium\":\"GPU\","
     "\"block_hashes\":[3],\"medium\":nil,\"x\":1,\"y\":2,\"x\":3}]]",
     "ts=1700000000 rank=nil; 0:BlockRemoved block_hashes=[3] medium=nil "
     "x=x03 y=x02"},
    {"map event forward-compatible extras", 0,
     "[" TS ", [{\"type\":\"BlockStored\",\"block_hashes\":[1],"
     "\"parent_block_hash\":nil,\"token_ids\":[1],\"block_size\":1,"
     "\"lora_id\":nil,\"medium\":\"GPU\",\"future_field\":{\"nested\":true},"
     "\"locality\":\"LOCAL\",\"ownership\":\"kvcr\",\"session_id\":\"s\"}], "
     "0, \"extra\"]",
     "ts=1700000000 rank=0; 0:BlockStored block_hashes=[1] "
     "parent_block_hash=nil token_ids=[1] block_size=1 lora_id=nil "
     "medium='GPU' locality='LOCAL' ownership='kvcr' session_id='s' "
     "future_field=x81a66e6573746564c3"},
    {"BlockRemoved map: stored-only fields are unknowns", 0,
     "[" TS ", [{\"type\":\"BlockRemoved\",\"block_hashes\":[1],"
     "\"token_ids\":[1],\"ownership\":\"o\"}]]",
     "ts=1700000000 rank=nil; 0:BlockRemoved block_hashes=[1] ownership='o' "
     "token_ids=x9101"},
    /* ATOM's and Mooncake's clears name the medium they cleared. */
    {"AllBlocksCleared map extras", 0,
     "[" TS ", [{\"type\":\"AllBlocksCleared\",\"medium\":\"GPU\","
     "\"x\":1}]]",
     "ts=1700000000 rank=nil; 0:AllBlocksCleared medium='GPU' x=x01"},
    {"ATOM: a 13-slot store, a cleared medium, a transfer", 0,
     "[" TS ", [[\"BlockStored\",[1],nil,[1],1,nil,\"GPU\",nil,nil,0,nil,"
     "nil,16],[\"AllBlocksCleared\",\"CPU\"],[\"AllBlocksCleared\",nil],"
     "[\"BlockTransferred\",[1,2],\"GPU\",\"CPU\",0],"
     "[\"BlockTransferred\",[1],\"GPU\"]]]",
     "ts=1700000000 rank=nil; 0:BlockStored block_hashes=[1] "
     "parent_block_hash=nil token_ids=[1] block_size=1 lora_id=nil "
     "medium='GPU' lora_name=nil extra_keys=nil group_idx=0 "
     "kv_cache_spec_kind=nil kv_cache_spec_sliding_window=nil "
     "token_offset=16; 1:AllBlocksCleared medium='CPU'; "
     "2:AllBlocksCleared medium=nil; 3:BlockTransferred "
     "block_hashes=[1,2] group_idx=0 from_medium='GPU' to_medium='CPU'; "
     "ERR event 4: BlockTransferred array has fewer than 4 elements"},
    {"map16 event with skipped_* fields (vLLM #44488)", 0,
     "[" TS ", [{\"type\":\"BlockStored\",\"block_hashes\":[1],"
     "\"parent_block_hash\":nil,\"token_ids\":[1],\"block_size\":1,"
     "\"lora_id\":nil,\"medium\":\"0123456789012345678901234567890123456789\","
     "\"lora_name\":nil,\"extra_keys\":nil,\"group_idx\":0,"
     "\"kv_cache_spec_kind\":\"k\",\"kv_cache_spec_sliding_window\":4,"
     "\"locality\":\"LOCAL\",\"ownership\":\"o\",\"session_id\":\"s\","
     "\"skipped_parent_block_hash\":nil,\"skipped_token_ids\":[],"
     "\"skipped_extra_keys\":nil}]]",
     "ts=1700000000 rank=nil; 0:BlockStored block_hashes=[1] "
     "parent_block_hash=nil token_ids=[1] block_size=1 lora_id=nil "
     "medium='0123456789012345678901234567890123456789' lora_name=nil "
     "extra_keys=nil group_idx=0 kv_cache_spec_kind='k' "
     "kv_cache_spec_sliding_window=4 locality='LOCAL' ownership='o' "
     "session_id='s' skipped_parent_block_hash=nil skipped_token_ids=x90 "
     "skipped_extra_keys=nil"},

    /* Hashes. */
    {"negative int hashes", 0,
     "[" TS ", [[\"BlockStored\",[-5,-8885242862429187823],"
     "-1985764632182427388,[1],1,nil]]]",
     "ts=1700000000 rank=nil; 0:BlockStored "
     "block_hashes=[18446744073709551611,9561501211280363793] "
     "parent_block_hash=16460979441527124228 token_ids=[1] block_size=1 "
     "lora_id=nil"},
    {"non-minimal widths", 0,
     "[" TS ", [[\"BlockRemoved\",[x\"d0 05\",x\"cd 00 01\",x\"d3 ff ff ff ff "
     "ff ff ff fe\"]]]]",
     "ts=1700000000 rank=nil; 0:BlockRemoved "
     "block_hashes=[5,1,18446744073709551614]"},
    {"bin digests", 0,
     "[" TS ", [{\"type\":\"BlockStored\",\"block_hashes\":[h\"50d858e0985ecc7f"
     "60418aaf0cc5ab587f42c2570a884095a9e8ccacd0f6545c\",5],"
     "\"parent_block_hash\":h\"0102030405060708\",\"token_ids\":[],"
     "\"block_size\":0,\"lora_id\":nil,\"medium\":nil}]]",
     "ts=1700000000 rank=nil; 0:BlockStored "
     "block_hashes=[12243260629618938972/50d858e0985ecc7f60418aaf0cc5ab587f42c2"
     "570a884095a9e8ccacd0f6545c,5] "
     "parent_block_hash=72623859790382856/0102030405060708 token_ids=[] "
     "block_size=0 lora_id=nil medium=nil"},

    /* SGLang. */
    {"SGLang map event", 1,
     "[" TS ", [{\"type\":\"BlockStored\",\"block_hashes\":"
     "[-6573382371980181291],\"parent_block_hash\":nil,\"token_ids\":[1,2,3,4],"
     "\"block_size\":4,\"lora_id\":nil,\"medium\":\"CPU_PINNED\","
     "\"cache_salt\":\"tenant-a\",\"session_id\":\"req-1\"},"
     "{\"type\":\"BlockRemoved\",\"block_hashes\":[-6573382371980181291]}], 0]",
     "ts=1700000000 rank=0; 0:BlockStored block_hashes=[11873361701729370325] "
     "parent_block_hash=nil token_ids=[1,2,3,4] block_size=4 lora_id=nil "
     "medium='CPU_PINNED' cache_salt='tenant-a' session_id='req-1'; "
     "1:BlockRemoved block_hashes=[11873361701729370325]"},
    {"SGLang bigram pages", 1,
     "[" TS ", [{\"type\":\"BlockStored\",\"block_hashes\":[1],"
     "\"parent_block_hash\":nil,\"token_ids\":[[21,22],[22,23],[23,24],"
     "[24,25]],\"block_size\":4,\"lora_id\":nil}], 0]",
     "ts=1700000000 rank=0; 0:BlockStored block_hashes=[1] "
     "parent_block_hash=nil token_ids=pairs[21,22,22,23,23,24,24,25] "
     "block_size=4 lora_id=nil"},
    {"bigram page with a bad pair", 1,
     "[" TS ", [[\"BlockStored\",[1],nil,[[1,2],[3]],4,nil]]]",
     "ts=1700000000 rank=nil; ERR event 0: token_ids: malformed pair"},
    {"bigram page mixed with flat", 1,
     "[" TS ", [[\"BlockStored\",[1],nil,[[1,2],3],4,nil]]]",
     "ts=1700000000 rank=nil; ERR event 0: token_ids: malformed pair"},
    {"flat tokens mixed with pair", 0,
     "[" TS ", [[\"BlockStored\",[1],nil,[3,[1,2]],4,nil]]]",
     "ts=1700000000 rank=nil; ERR event 0: token_ids: wrong type"},
    {"SGLang array salt map (PR 30827)", 1,
     "[" TS ", [[\"BlockStored\",[1],nil,[1,2,3,4],4,nil,\"GPU\","
     "{\"cache_salt\":\"tenant-a\"}]]]",
     "ts=1700000000 rank=nil; 0:BlockStored block_hashes=[1] "
     "parent_block_hash=nil token_ids=[1,2,3,4] block_size=4 lora_id=nil "
     "medium='GPU' cache_salt='tenant-a'"},
    {"SGLang array salt str + session", 1,
     "[" TS ", [[\"BlockStored\",[1],nil,[1,2,3,4],4,nil,\"GPU\","
     "\"tenant-a\",\"req-1\",5],[\"BlockRemoved\",[1],\"GPU\",0]]]",
     "ts=1700000000 rank=nil; 0:BlockStored block_hashes=[1] "
     "parent_block_hash=nil token_ids=[1,2,3,4] block_size=4 lora_id=nil "
     "medium='GPU' cache_salt='tenant-a' session_id='req-1' @9=x05; "
     "1:BlockRemoved block_hashes=[1] medium='GPU' @3=x00"},
    /* SGLang #37482: the map may name session_id, and leave either out. */
    {"SGLang metadata map with session_id only", 1,
     "[" TS ", [[\"BlockStored\",[1],nil,[1],1,nil,nil,"
     "{\"session_id\":\"req-2\"}]]]",
     "ts=1700000000 rank=nil; 0:BlockStored block_hashes=[1] "
     "parent_block_hash=nil token_ids=[1] block_size=1 lora_id=nil "
     "medium=nil session_id='req-2'"},
    {"SGLang metadata map, session_id not a string", 1,
     "[" TS ", [[\"BlockStored\",[1],nil,[1],1,nil,nil,"
     "{\"session_id\":5}]]]",
     "ts=1700000000 rank=nil; 0:BlockStored block_hashes=[1] "
     "parent_block_hash=nil token_ids=[1] block_size=1 lora_id=nil "
     "medium=nil @7=x81aa73657373696f6e5f696405"},
    {"SGLang salt map without salt key", 1,
     "[" TS ", [[\"BlockStored\",[1],nil,[1],1,nil,nil,{\"x\":[1]}]]]",
     "ts=1700000000 rank=nil; 0:BlockStored block_hashes=[1] "
     "parent_block_hash=nil token_ids=[1] block_size=1 lora_id=nil "
     "medium=nil @7=x81a1789101"},
    {"vLLM reading SGLang salt map: slot 7 unknown", 0,
     "[" TS ", [[\"BlockStored\",[1],nil,[1,2,3,4],4,nil,\"GPU\","
     "{\"cache_salt\":\"tenant-a\"}]]]",
     "ts=1700000000 rank=nil; 0:BlockStored block_hashes=[1] "
     "parent_block_hash=nil token_ids=[1,2,3,4] block_size=4 lora_id=nil "
     "medium='GPU' @7=x81aa63616368655f73616c74a874656e616e742d61"},
    {"vLLM reading SGLang salt str: misread as lora_name", 0,
     "[" TS ", [[\"BlockStored\",[1],nil,[1],1,nil,\"GPU\",\"tenant-a\"]]]",
     "ts=1700000000 rank=nil; 0:BlockStored block_hashes=[1] "
     "parent_block_hash=nil token_ids=[1] block_size=1 lora_id=nil "
     "medium='GPU' lora_name='tenant-a'"},

    /* llm-d's packed events: a byte string holding one array event. */
    {"packed events, parent 0 is no parent", 0,
     "[" TS ", [h\"97 ab 42 6c 6f 63 6b 53 74 6f 72 65 64 91 01 00 90 00 c0 "
     "a3 47 50 55\", h\"97 ab 42 6c 6f 63 6b 53 74 6f 72 65 64 91 01 05 90 "
     "00 c0 a3 47 50 55\"]]",
     "ts=1700000000 rank=nil; 0:BlockStored block_hashes=[1] "
     "parent_block_hash=nil token_ids=[] block_size=0 lora_id=nil "
     "medium='GPU'; 1:BlockStored block_hashes=[1] parent_block_hash=5 "
     "token_ids=[] block_size=0 lora_id=nil medium='GPU'"},
    {"packed event with trailing bytes, or not an array", 0,
     "[" TS ", [h\"92 ac 42 6c 6f 63 6b 52 65 6d 6f 76 65 64 91 01 00\", "
     "h\"01\", h\"92 ac 42 6c 6f 63 6b 52 65 6d 6f 76 65 64 91 02\"]]",
     "ts=1700000000 rank=nil; ERR event 0: trailing bytes after packed event; "
     "ERR event 1: packed event is not an array; "
     "2:BlockRemoved block_hashes=[2]"},
    /* Mooncake: milliseconds from 10^11 on, event_type without type. */
    {"integer ts: seconds below 10^11, milliseconds from there", 0,
     "[99999999999, [{\"event_type\":\"cleared\"}]]",
     "ts=99999999999 rank=nil; 0:AllBlocksCleared "
     "event_type=xa7636c6561726564"},
    {"ts in milliseconds", 0,
     "[100000000000, [{\"event_type\":\"removed\",\"block_hashes\":[],"
     "\"token_ids\":nil}]]",
     "ts=100000000 rank=nil; 0:BlockRemoved block_hashes=[] "
     "event_type=xa772656d6f766564 token_ids=xc0"},
    /* Unknown tags. */
    {"unknown tags skipped and counted", 0,
     "[" TS ", [[\"BlockRemoved\",[1]],{\"type\":\"BlockMigrated\","
     "\"block_hashes\":[1],\"destination\":\"peer\"},"
     "[\"BlockMigrated\",[1],\"peer\"],[\"gap\"],[\"BlockRemoved\",[2]]]]",
     "ts=1700000000 rank=nil; 0:BlockRemoved block_hashes=[1]; "
     "4:BlockRemoved block_hashes=[2]; SKIP BlockMigrated*2; SKIP gap*1"},
};

static void
test_decode_table(void)
{
    struct wiretext_bytes *in = malloc(sizeof *in);
    struct arena a = {0};
    struct buf o = {0};

    for (size_t i = 0; i < sizeof dcases / sizeof dcases[0]; i++) {
        const struct dcase *c = &dcases[i];
        struct wire_opts opts = {0};
        struct kv_batch b = {0};
        char err[128] = "";

        opts.engine = c->sglang ? KV_ENGINE_SGLANG : KV_ENGINE_VLLM;
        wiretext_parse(c->in, in);
        arena_reset(&a);
        int rc = wire_decode(in->p, in->n, &opts, &a, &b, err, sizeof err);
        wiretext_dump(&o, rc, &b, err);
        CHECK_STR(o.p, c->want, c->name);
        /* Every decode_error carries the payload length. */
        for (size_t k = 0; rc == 0 && k < b.n_events; k++)
            if (b.events[k].type == KV_DECODE_ERROR)
                CHECK_U64(b.events[k].bytes, in->n, "decode_error bytes");
    }
    arena_free(&a);
    buf_free(&o);
    free(in);
}

/*
 * Token ids in every integer form (fixint, cc, cd, ce, cf, and the wider
 * forms also for small values), in random order and list lengths, read
 * back exactly: the decoder takes cd and ce two at a time, and the last
 * ids of each list lie within 16 bytes of the payload's end, where it
 * reads one at a time.
 */
static void
test_token_forms(void)
{
    static uint8_t p[8192];
    static uint32_t want[600];
    struct arena a = {0};
    uint64_t r = 0x853c49e6748fea9bull;
    size_t bad = 0;
    char err[128] = "", first[160] = "";

    for (int trial = 0; trial < 4000; trial++) {
        size_t n = 1 + (size_t)(trial % 600), o = 0;
        static const uint8_t head[] = {
            0x92, 0xcb, 0x41, 0xd9, 0x54, 0xfc, 0x40, 0x00, 0x00, 0x00, /* ts */
            0x91, 0x96, 0xab, 'B',  'l',  'o',  'c',  'k',  'S',  't',
            'o',  'r',  'e',  'd',  0x91, 0x01, 0xc0, 0xdc};
        memcpy(p, head, sizeof head);
        o = sizeof head;
        p[o++] = (uint8_t)(n >> 8);
        p[o++] = (uint8_t)n;
        for (size_t k = 0; k < n; k++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            /* Mostly cd and ce, as a large vocabulary gives them. */
            unsigned form = (unsigned)(r >> 61);
            uint32_t v = (uint32_t)(r >> 20);
            switch (form) {
            case 0:
                v &= 0x7f;
                p[o++] = (uint8_t)v;
                break;
            case 1:
                v &= 0xff;
                p[o++] = 0xcc;
                p[o++] = (uint8_t)v;
                break;
            case 2:
            case 3:
            case 4:
                v &= r >> 40 & 1 ? 0xffff : 0xff;
                p[o++] = 0xcd;
                p[o++] = (uint8_t)(v >> 8);
                p[o++] = (uint8_t)v;
                break;
            case 7:
                /* cf: the one-at-a-time reader's. */
                p[o++] = 0xcf;
                memset(p + o, 0, 4);
                o += 4;
                /* fall through */
            default:
                if (form != 7)
                    p[o++] = 0xce;
                if (r >> 40 & 1)
                    v &= 0x3ffff;
                for (int b = 3; b >= 0; b--)
                    p[o++] = (uint8_t)(v >> (8 * b));
                break;
            }
            want[k] = v;
        }
        p[o++] = 0x10; /* block_size */
        p[o++] = 0xc0; /* lora_id */

        struct wire_opts opts = {0};
        struct kv_batch b = {0};
        arena_reset(&a);
        int rc = wire_decode(p, o, &opts, &a, &b, err, sizeof err);
        const struct kv_event *ev =
            rc == 0 && b.n_events == 1 ? b.events : NULL;
        int same = ev != NULL && ev->type == KV_BLOCK_STORED &&
                   ev->n_tokens == n && !ev->token_pairs && !ev->token_mixed;
        for (size_t k = 0; same && k < n; k++)
            same = ev->tokens[k] == want[k];
        if (!same && bad++ == 0)
            snprintf(first, sizeof first, "trial %d, %zu ids: rc %d %s", trial,
                     n, rc, err);
    }
    char what[256];
    snprintf(what, sizeof what,
             "token ids in every integer form read back (first wrong: %s)",
             first);
    CHECK_U64(bad, 0, what);
    arena_free(&a);
}

/* Every proper prefix of a valid payload is a batch error, never a crash. */
static void
test_prefixes(void)
{
    struct wiretext_bytes *in = malloc(sizeof *in);
    struct arena a = {0};
    int bad = 0;

    wiretext_parse(dcases[0].in, in);
    for (size_t n = 0; n < in->n; n++) {
        struct kv_batch b = {0};
        char err[128];
        arena_reset(&a);
        if (wire_decode(in->p, n, NULL, &a, &b, err, sizeof err) != -1)
            bad++;
    }
    CHECK(bad == 0, "every truncation of a payload is a batch error");
    arena_free(&a);
    free(in);
}

/* Caps: events per batch and tokens per event, from opts. */
static void
test_caps(void)
{
    struct wiretext_bytes *in = malloc(sizeof *in);
    struct arena a = {0};
    struct buf o = {0};
    struct wire_opts opts = {0};
    struct kv_batch b = {0};
    char err[128] = "";

    opts.max_events = 2;
    wiretext_parse("[1.0, [[\"AllBlocksCleared\"],[\"AllBlocksCleared\"],"
                   "[\"AllBlocksCleared\"]]]",
                   in);
    int rc = wire_decode(in->p, in->n, &opts, &a, &b, err, sizeof err);
    wiretext_dump(&o, rc, &b, err);
    CHECK_STR(o.p, "FAIL too many events (3)", "max_events caps a batch");

    opts.max_events = 0;
    opts.max_tokens = 3;
    wiretext_parse("[1.0, [[\"BlockStored\",[1],nil,[1,2,3,4],4,nil],"
                   "[\"BlockStored\",[1],nil,[1,2,3],4,nil]]]",
                   in);
    arena_reset(&a);
    rc = wire_decode(in->p, in->n, &opts, &a, &b, err, sizeof err);
    wiretext_dump(&o, rc, &b, err);
    CHECK_STR(o.p,
              "ts=1 rank=nil; ERR event 0: token_ids: too many tokens; "
              "1:BlockStored block_hashes=[1] parent_block_hash=nil "
              "token_ids=[1,2,3] block_size=4 lora_id=nil",
              "max_tokens caps an event");

    /* 2^20 real tokens are legal under the default cap. */
    in->n = 0;
    wiretext_put(in, "\x92\xcb\x41\xd9\x54\xfc\x40\x00\x00\x00\x91\x96", 12);
    wiretext_put(in,
                 "\xab"
                 "BlockStored\x91\x01\xc0\xdd\x00\x10\x00\x00",
                 20);
    size_t big = (size_t)1 << 20;
    uint8_t *toks = malloc(big);
    memset(toks, 0x07, big);
    uint8_t *payload = malloc(in->n + big + 2);
    memcpy(payload, in->p, in->n);
    memcpy(payload + in->n, toks, big);
    memcpy(payload + in->n + big, "\x10\xc0", 2);
    arena_reset(&a);
    rc = wire_decode(payload, in->n + big + 2, NULL, &a, &b, err, sizeof err);
    CHECK(rc == 0 && b.n_events == 1 && b.events[0].type == KV_BLOCK_STORED &&
              b.events[0].n_tokens == big && b.events[0].tokens[big - 1] == 7,
          "2^20 tokens decode");
    free(payload);
    free(toks);
    arena_free(&a);
    buf_free(&o);
    free(in);
}

int
main(void)
{
    test_decode_table();
    test_token_forms();
    test_prefixes();
    test_caps();
    return unit_done();
}
