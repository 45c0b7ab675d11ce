/* test_placement.c -- member_of expressions and placement: resources, constraints, strategies. */
#include <stdlib.h>
#include <string.h>

#include "placement.h"
#include "../../tap.h"

static bool eval(const char *text, const char *attrs_json)
{
    char *err = NULL;
    struct pl_expr *e = pl_expr_parse(text, &err);
    if (!e) {
        printf("# parse error: %s\n", err);
        free(err);
        return false;
    }
    json_t *a = json_loads(attrs_json, 0, NULL);
    bool r = pl_expr_eval(e, a);
    json_decref(a);
    pl_expr_free(e);
    return r;
}

static void parse_error(const char *text, const char *want)
{
    char *err = NULL;
    struct pl_expr *e = pl_expr_parse(text, &err);
    ok(!e && err && strcmp(err, want) == 0, "\"%s\" is refused: %s", text, want);
    if (err && strcmp(err, want) != 0)
        printf("#   got: %s\n", err);
    pl_expr_free(e);
    free(err);
}

#define NODE(id_, cpu_, mem_, attrs_)                                                                                  \
    {                                                                                                                  \
        id_, cpu_, mem_, 0, 0, attrs_, true, false                                                                     \
    }

/* Places <count> tasks; returns how many were placed; counts per node in <per>. */
static int place(struct pl_node *nodes, size_t n, struct pl_request *req, int count, int *per, char *why)
{
    struct pl_batch *b = pl_batch_new(nodes, n, req, per, 42);
    int placed = 0;
    for (int k = 0; k < count; k++) {
        int i = pl_batch_place(b, why, 256);
        if (i < 0)
            break;
        per[i]++;
        placed++;
    }
    pl_batch_free(b);
    return placed;
}

int main(void)
{
    /* Expressions. */
    const char *zone_a = "{\"zone\": \"a\", \"disk\": \"ssd\"}";
    ok(eval("attribute:zone == a", zone_a), "== matches");
    ok(!eval("attribute:zone != a", zone_a), "!= does not");
    ok(eval("attribute:zone in [a, b]", zone_a), "in [a, b]");
    ok(eval("attribute:zone in (b, 'a')", zone_a), "in (b, 'a') with quotes and parentheses");
    ok(!eval("attribute:zone !in [a, b]", zone_a), "!in");
    ok(eval("attribute:disk exists", zone_a) && !eval("attribute:gpu exists", zone_a), "exists");
    ok(eval("attribute:gpu !exists", zone_a), "!exists");
    ok(!eval("attribute:gpu == x", zone_a) && eval("attribute:gpu != x", zone_a), "a missing attribute is != anything");
    ok(eval("attribute:zone == b or attribute:zone == a and attribute:disk == ssd", zone_a),
       "and binds tighter than or");
    ok(!eval("(attribute:zone == b or attribute:zone == a) and attribute:disk == hdd", zone_a), "parentheses");
    ok(eval("attribute:ecs.instance-type == \"t3.small\"", "{\"ecs.instance-type\": \"t3.small\"}"),
       "dotted names, quoted values");
    parse_error("zone == a", "expected attribute:NAME, found 'zone' at position 1");
    parse_error("attribute:zone in a", "expected '[' after in at position 19");
    parse_error("attribute:zone ==", "expected a value, found the end at position 18");
    parse_error("attribute:zone in [a b]", "expected ',' or ']' at position 22");
    parse_error("attribute:zone = a", "unexpected character '=' at position 16");
    parse_error("attribute:zone == a b", "unexpected 'b' at position 21");
    parse_error("(attribute:zone == a", "expected ')' at position 21");
    parse_error("attribute:zone == 'a", "unterminated quote at position 19");
    char deep[200] = "";
    for (int i = 0; i < 40; i++)
        strcat(deep, "(");
    strcat(deep, "attribute:a exists");
    parse_error(deep, "parentheses nested deeper than 32 at position 33");
    char *wide = malloc(300 * 24 + 1);
    wide[0] = 0;
    for (int i = 0; i < 300; i++)
        strcat(wide, i ? " or attribute:a exists" : "attribute:a exists");
    char *err = NULL;
    struct pl_expr *big = pl_expr_parse(wide, &err);
    ok(!big && err && strncmp(err, "more than 256 conditions at position ", 37) == 0, "300 conditions are refused: %s",
       err);
    free(err);
    free(wide);

    char why[256];
    int per[8];

    /* spread on instanceId: even. */
    struct pl_node three[] = {NODE("n1", 4096, 4096, NULL), NODE("n2", 4096, 4096, NULL), NODE("n3", 4096, 4096, NULL)};
    struct pl_strategy spread_inst = {PL_SPREAD, "instanceId"};
    struct pl_request req = {.cpu = 128, .mem = 64, .strategies = &spread_inst, .nstrategies = 1};
    memset(per, 0, sizeof per);
    is_int(place(three, 3, &req, 9, per, why), 9, "spread: 9 tasks placed");
    ok(per[0] == 3 && per[1] == 3 && per[2] == 3, "spread instanceId: 3/3/3 (%d/%d/%d)", per[0], per[1], per[2]);
    is_int(three[0].mem_used, 192, "usage is accounted on the node");

    /* spread on an attribute: even across zones, not nodes. */
    json_t *za = json_pack("{s:s}", "zone", "a"), *zb = json_pack("{s:s}", "zone", "b");
    struct pl_node zones[] = {NODE("a1", 4096, 4096, za), NODE("a2", 4096, 4096, za), NODE("b1", 4096, 4096, zb)};
    struct pl_strategy spread_zone = {PL_SPREAD, "attribute:zone"};
    req.strategies = &spread_zone;
    memset(per, 0, sizeof per);
    place(zones, 3, &req, 6, per, why);
    ok(per[0] + per[1] == 3 && per[2] == 3, "spread attribute:zone: 3 in a, 3 in b (%d+%d, %d)", per[0], per[1],
       per[2]);

    /* binpack memory: the node with the least room left goes first. */
    struct pl_node bins[] = {NODE("big", 4096, 300, NULL), NODE("small", 4096, 100, NULL)};
    struct pl_strategy binpack = {PL_BINPACK, "memory"};
    req.strategies = &binpack;
    req.mem = 50;
    memset(per, 0, sizeof per);
    place(bins, 2, &req, 2, per, why);
    ok(per[1] == 2 && per[0] == 0, "binpack memory: the small node fills first (%d, %d)", per[0], per[1]);
    place(bins, 2, &req, 1, per, why);
    is_int(per[0], 1, "binpack: then the big one");

    /* spread zone then binpack memory: zones alternate, within a zone the fuller node first. */
    struct pl_node mix[] = {NODE("a-big", 4096, 400, za), NODE("a-small", 4096, 200, za), NODE("b1", 4096, 400, zb)};
    struct pl_strategy both[] = {{PL_SPREAD, "attribute:zone"}, {PL_BINPACK, "memory"}};
    req.strategies = both;
    req.nstrategies = 2;
    memset(per, 0, sizeof per);
    place(mix, 3, &req, 4, per, why);
    ok(per[0] == 0 && per[1] == 2 && per[2] == 2, "spread zone, then binpack memory (%d, %d, %d)", per[0], per[1],
       per[2]);

    /* distinct_instance. */
    for (int i = 0; i < 3; i++)
        three[i].cpu_used = three[i].mem_used = 0;
    req = (struct pl_request){.cpu = 1, .mem = 1, .distinct_instance = true};
    memset(per, 0, sizeof per);
    is_int(place(three, 3, &req, 4, per, why), 3, "distinct_instance: 3 tasks on 3 nodes, not 4");
    ok(per[0] == 1 && per[1] == 1 && per[2] == 1, "one per node");
    ok(strstr(why, "distinct_instance: each of the 3 matching nodes") != NULL, "the 4th says why: %s", why);

    /* member_of. */
    err = NULL;
    struct pl_expr *only_b = pl_expr_parse("attribute:zone == b", &err),
                   *only_c = pl_expr_parse("attribute:zone == c", &err);
    struct pl_request rb = {
        .cpu = 1, .mem = 1, .member_of = &only_b, .nmember_of = 1, .member_of_text = "attribute:zone == b"};
    for (int i = 0; i < 3; i++)
        zones[i].cpu_used = zones[i].mem_used = 0;
    memset(per, 0, sizeof per);
    is_int(place(zones, 3, &rb, 5, per, why), 5, "member_of: 5 tasks placed");
    is_int(per[2], 5, "all on the zone b node");
    struct pl_request rc = {
        .cpu = 1, .mem = 1, .member_of = &only_c, .nmember_of = 1, .member_of_text = "attribute:zone == c"};
    memset(per, 0, sizeof per);
    is_int(place(zones, 3, &rc, 1, per, why), 0, "member_of matching no node: nothing placed");
    is_str(why, "no node matches the constraint member_of(attribute:zone == c) (3 active)", "and the reason names it");
    pl_expr_free(only_b);
    pl_expr_free(only_c);

    /* Resources. */
    struct pl_node tiny[] = {NODE("t1", 1024, 32, NULL), NODE("t2", 1024, 48, NULL)};
    req = (struct pl_request){.cpu = 128, .mem = 64};
    memset(per, 0, sizeof per);
    is_int(place(tiny, 2, &req, 1, per, why), 0, "64 MiB fits on no node");
    is_str(why, "insufficient memory: the task needs 64 MiB, the most free on 2 nodes is 48 MiB",
           "reason names memory");
    req = (struct pl_request){.cpu = 2048, .mem = 16};
    place(tiny, 2, &req, 1, per, why);
    is_str(why, "insufficient cpu: the task needs 2048 units, the most free on a node with the memory is 1024",
           "reason names cpu");
    tiny[0].active = tiny[1].active = false;
    req = (struct pl_request){.cpu = 1, .mem = 1};
    place(tiny, 2, &req, 1, per, why);
    is_str(why, "no ACTIVE node (2 known)", "draining nodes take nothing");

    /* Filling up: every task placed until the capacity is used, none beyond. */
    enum { N = 1000 };
    struct pl_node *many = calloc(N, sizeof *many);
    for (int i = 0; i < N; i++)
        many[i] = (struct pl_node)NODE("n", 1024, 1024, i % 2 ? za : zb);
    struct pl_request fill = {.cpu = 64, .mem = 64, .strategies = both, .nstrategies = 2};
    struct pl_batch *b = pl_batch_new(many, N, &fill, NULL, 7);
    int placed = 0;
    while (pl_batch_place(b, why, sizeof why) >= 0)
        placed++;
    pl_batch_free(b);
    is_int(placed, N * 16, "1,000 nodes take exactly 16,000 tasks of 64 MiB / 64 cpu");
    int bad = 0;
    for (int i = 0; i < N; i++)
        bad += many[i].mem_used != 1024;
    is_int(bad, 0, "and every node is full");
    free(many);

    /* Image tasks go only to nodes with a container engine, and say so when there is none. */
    struct pl_node eng[] = {NODE("plain", 4096, 4096, NULL), NODE("engine", 4096, 4096, NULL)};
    struct pl_request img = {.cpu = 128, .mem = 64, .strategies = &spread_inst, .nstrategies = 1, .containers = true};
    b = pl_batch_new(eng, 2, &img, NULL, 3);
    ok(pl_batch_place(b, why, sizeof why) < 0 && strstr(why, "no node runs containers"),
       "an image task is not placed on nodes without a container engine (%s)", why);
    pl_batch_free(b);
    eng[1].containers = true;
    b = pl_batch_new(eng, 2, &img, NULL, 3);
    int at[3] = {pl_batch_place(b, why, sizeof why), pl_batch_place(b, why, sizeof why), pl_batch_place(b, why, sizeof why)};
    ok(at[0] == 1 && at[1] == 1 && at[2] == 1, "every image task goes to the node with the engine");
    pl_batch_free(b);
    json_decref(za);
    json_decref(zb);
    return done_testing();
}
