/*
 * test_log.c - the logger as journald sees it: with JOURNAL_STREAM naming
 * stderr (a pipe here, as under systemd) every line starts with "<N>" (the
 * syslog priority) and has no timestamp; otherwise a UTC timestamp and the
 * level name. One event is one line (embedded newlines folded), and there
 * are never colour codes (the logger has none, terminal or not).
 *
 * Journal detection happens once per process (pthread_once), so each case
 * runs in a forked child with its own environment and stderr.
 */
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "wbmb/log.h"

enum journal_mode { J_MATCH, J_OTHER, J_UNSET };

static void log_events(void)
{
    log_set_level(LOG_LVL_INFO);
    log_info("hello %s", "world");
    log_error("two\nlines\r\nhere");
    log_debug("hidden at info");
    log_warn("careful");
    log_set_level(LOG_LVL_DEBUG);
    log_debug("shown at debug");
}

/* Runs log_events() in a child whose stderr is a pipe; returns what it wrote. */
static char *capture(enum journal_mode mode)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        struct stat st;
        char js[64];
        fstat(STDERR_FILENO, &st);
        if (mode == J_MATCH)
            snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
                     (unsigned long long)st.st_ino);
        else
            snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
                     (unsigned long long)st.st_ino + 1);
        if (mode == J_UNSET)
            unsetenv("JOURNAL_STREAM");
        else
            setenv("JOURNAL_STREAM", js, 1);
        log_events();
        _exit(0);
    }
    close(fds[1]);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    ssize_t n;
    while ((n = read(fds[0], buf + len, cap - len - 1)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return buf;
}

static bool matches(const char *text, const char *re)
{
    regex_t r;
    assert_int_equal(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
    bool ok = regexec(&r, text, 0, NULL, 0) == 0;
    regfree(&r);
    return ok;
}

static void test_journal_prefix(void **state)
{
    (void)state;
    char *out = capture(J_MATCH);
    assert_string_equal(out, "<6>hello world\n"
                             "<3>two lines  here\n"
                             "<4>careful\n"
                             "<7>shown at debug\n");
    free(out);
}

static void test_plain_stderr(void **state)
{
    (void)state;
    /* JOURNAL_STREAM set but naming another file (inherited from a parent
     * whose stderr went to the journal): not the journal. */
    const enum journal_mode modes[] = {J_OTHER, J_UNSET};
    for (size_t m = 0; m < 2; m++) {
        char *out = capture(modes[m]);
        const char *ts = "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z ";
        char re[512];
        snprintf(re, sizeof(re),
                 "^%sinfo    hello world\n%serror   two lines  here\n%swarning careful\n"
                 "%sdebug   shown at debug\n$",
                 ts, ts, ts, ts);
        assert_true(matches(out, re));
        assert_null(strchr(out, '<'));
        free(out);
    }
}

static void test_no_colour_codes(void **state)
{
    (void)state;
    const enum journal_mode modes[] = {J_MATCH, J_OTHER, J_UNSET};
    for (size_t m = 0; m < 3; m++) {
        char *out = capture(modes[m]);
        assert_null(strchr(out, '\033'));
        free(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_journal_prefix),
        cmocka_unit_test(test_plain_stderr),
        cmocka_unit_test(test_no_colour_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
