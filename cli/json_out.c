/* JSON output that is always valid JSON: numbers that are not finite become null (JSON has
 * no NaN or Inf, and Jansson refuses them, which once left `eval --json` printing an empty
 * line with exit 0), strings that are not UTF-8 are repaired, and a failure to build or to
 * write the document is an error. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

json_t *cli_jnum(double v, int *nulls) {
    if (isfinite(v)) return json_real(v);
    if (nulls) (*nulls)++;
    return json_null();
}

json_t *cli_jstr(const char *s) {
    if (!s) s = "";
    json_t *j = json_string(s);
    if (j) return j;
    /* Not UTF-8 (a folder name in another encoding): bytes past ASCII become '?'. */
    char *c = strdup(s);
    if (!c) return NULL;
    for (char *p = c; *p; p++)
        if ((unsigned char)*p >= 0x80) *p = '?';
    j = json_string(c);
    free(c);
    return j;
}

int cli_json_emit(const char *cmd, json_t *doc, int nulls, const char *why) {
    if (!doc) return cli_fail(cmd, "cannot build the JSON output (out of memory)");
    if (nulls > 0)
        json_object_set_new(doc, "null_values", cli_jstr(why ? why : "values that are not finite numbers are written as null"));
    int st = json_dumpf(doc, stdout, JSON_INDENT(2));
    json_decref(doc);
    if (st != 0 || fputc('\n', stdout) == EOF || fflush(stdout) != 0)
        return cli_fail(cmd, "cannot write the JSON output to standard output");
    return 0;
}
