/* runlog.c - run directory, log, metrics, progress and Ctrl-C. */
#include "runlog.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctx.h"
#include "dist.h"

flava_status flava_mkdirs(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "bad directory path '%s'", path);
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return FLAVA_ERROR(FLAVA_ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return FLAVA_ERROR(FLAVA_ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return FLAVA_ERROR(FLAVA_ERR_IO, "%s exists and is not a directory", buf);
    return FLAVA_OK;
}

static flava_status open_append(FILE **f, const char *dir, const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    *f = fopen(path, "a");
    if (!*f)
        return FLAVA_ERROR(FLAVA_ERR_IO, "cannot open %s for appending: %s", path, strerror(errno));
    return FLAVA_OK;
}

flava_status flava_runlog_open(flava_runlog *rl, const char *run_dir, long first_step,
                               long total_steps)
{
    memset(rl, 0, sizeof *rl);
    if (strlen(run_dir) >= sizeof rl->dir)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "run directory path too long: %s", run_dir);
    snprintf(rl->dir, sizeof rl->dir, "%s", run_dir);
    rl->silent = flava_dist_rank() != 0;
    if (rl->silent)
        return FLAVA_OK;
    FLAVA_TRY(flava_mkdirs(run_dir));
    FLAVA_TRY(open_append(&rl->log, run_dir, "log.txt"));
    flava_status s = open_append(&rl->metrics, run_dir, "metrics.jsonl");
    if (s != FLAVA_OK) {
        fclose(rl->log);
        rl->log = NULL;
        return s;
    }
    rl->tty = isatty(STDERR_FILENO);
    rl->t_start = flava_now();
    rl->first_step = first_step;
    rl->total_steps = total_steps;
    return FLAVA_OK;
}

void flava_runlog_close(flava_runlog *rl)
{
    if (rl->tty)
        fputc('\n', stderr);
    if (rl->log)
        fclose(rl->log);
    if (rl->metrics)
        fclose(rl->metrics);
    rl->log = rl->metrics = NULL;
}

void flava_runlog_printf(flava_runlog *rl, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    if (rl->silent)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (rl->tty)
        fputs("\r\033[K", stderr); /* clear the progress line first */
    fprintf(stderr, "%s\n", msg);
    if (rl->log) {
        char stamp[32];
        time_t now = time(NULL);
        struct tm tm;
        strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", localtime_r(&now, &tm));
        fprintf(rl->log, "%s %s\n", stamp, msg);
        fflush(rl->log);
    }
}

flava_status flava_runlog_metrics(flava_runlog *rl, long step, const char *const *names,
                                  const double *values, int n)
{
    if (rl->silent)
        return FLAVA_OK;
    fprintf(rl->metrics, "{\"step\": %ld", step);
    for (int i = 0; i < n; i++)
        fprintf(rl->metrics, ", \"%s\": %.9g", names[i], values[i]);
    fprintf(rl->metrics, "}\n");
    if (fflush(rl->metrics) != 0)
        return FLAVA_ERROR(FLAVA_ERR_IO, "cannot write %s/metrics.jsonl: %s", rl->dir, strerror(errno));
    return FLAVA_OK;
}

static void format_duration(char *buf, size_t n, double s)
{
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else
        snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

void flava_runlog_progress(flava_runlog *rl, long step, double loss, double samples_per_s)
{
    if (rl->silent)
        return;
    double elapsed = flava_now() - rl->t_start;
    long done = step - rl->first_step;
    char eta[32] = "?";
    if (done > 0)
        format_duration(eta, sizeof eta, elapsed / (double)done * (double)(rl->total_steps - step));
    if (rl->tty) {
        enum { BAR = 24 };
        int filled = rl->total_steps > 0 ? (int)(BAR * step / rl->total_steps) : 0;
        char bar[BAR + 1];
        for (int i = 0; i < BAR; i++)
            bar[i] = i < filled ? '=' : ' ';
        bar[BAR] = '\0';
        fprintf(stderr, "\r\033[Kstep %ld/%ld [%s] loss %.4f | %.1f samples/s | ETA %s", step,
                rl->total_steps, bar, loss, samples_per_s, eta);
        fflush(stderr);
    } else {
        flava_runlog_printf(rl, "step %ld/%ld loss %.4f %.1f samples/s ETA %s", step, rl->total_steps,
                            loss, samples_per_s, eta);
    }
}

static volatile sig_atomic_t interrupt_flag;

static void on_stop_signal(int sig)
{
    if (interrupt_flag) { /* the second one: the user really wants out */
        signal(sig, SIG_DFL);
        raise(sig);
    }
    interrupt_flag = 1;
}

void flava_interrupt_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    /* what mpirun sends every rank on Ctrl-C, and batch schedulers before
     * they kill a job at its time limit */
    sigaction(SIGTERM, &sa, NULL);
}

int flava_interrupted(void) { return interrupt_flag != 0; }
