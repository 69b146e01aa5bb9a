// fuzz_task.c: one GSM8K or CommonsenseQA JSONL record (first input byte
// picks the task) through qs_task_parse_line, which builds the zero-shot prompt.
#include "fuzz_common.h"
#include "quietstar/task_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
    if (n < 1) return 0;
    char *line = fuzz_cstr(d + 1, n - 1);
    qs_task_prompt p;
    if (qs_task_parse_line(d[0] & 1 ? QS_TASK_CSQA : QS_TASK_GSM8K, line, &p) == QS_OK) {
        FUZZ_CHECK(p.answer_off <= strlen(p.prompt), "answer offset %zu beyond the prompt", p.answer_off);
        qs_task_prompt_free(&p);
    }
    free(line);
    return 0;
}
