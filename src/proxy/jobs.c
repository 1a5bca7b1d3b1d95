/* The proxy's job threads (proxy/jobs.h). */
#include "proxy/jobs.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#define MAX_QUEUED 4096

struct job {
	struct job *next;
	berth_job_fn fn;
	void *arg;
};

struct berth_jobs {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *head, **tail;
	size_t queued;
	int stopping;
	int nice_delta; /* the threads' priority below their starter's */
	char name[16];
	size_t n;
	pthread_t *threads;
};

static void *worker(void *arg)
{
	struct berth_jobs *j = arg;
	if (j->nice_delta > 0 && berth_thread_lower_priority(j->nice_delta) != 0)
		berth_debug("%s threads: cannot lower their priority: %s", j->name, strerror(errno));
	pthread_mutex_lock(&j->lock);
	for (;;) {
		while (!j->head && !j->stopping)
			pthread_cond_wait(&j->cond, &j->lock);
		struct job *job = j->head;
		if (!job)
			break; /* stopping, and nothing left */
		j->head = job->next;
		if (!j->head)
			j->tail = &j->head;
		j->queued--;
		pthread_mutex_unlock(&j->lock);
		job->fn(job->arg);
		free(job);
		pthread_mutex_lock(&j->lock);
	}
	pthread_mutex_unlock(&j->lock);
	return NULL;
}

int berth_jobs_start(struct berth_jobs **out, size_t n, const char *name)
{
	return berth_jobs_start_nice(out, n, name, 0);
}

int berth_jobs_start_nice(struct berth_jobs **out, size_t n, const char *name, int nice_delta)
{
	struct berth_jobs *j = berth_calloc(1, sizeof(*j));
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->cond, NULL);
	j->tail = &j->head;
	j->nice_delta = nice_delta;
	snprintf(j->name, sizeof(j->name), "%s", name);
	j->threads = berth_calloc(n, sizeof(*j->threads));
	for (size_t i = 0; i < n; i++) {
		if (pthread_create(&j->threads[j->n], NULL, worker, j) != 0)
			break;
		char tname[16];
		snprintf(tname, sizeof(tname), "%.8s-%u", name, (unsigned)(i % 1000));
		pthread_setname_np(j->threads[j->n], tname);
		j->n++;
	}
	if (j->n == 0) {
		berth_jobs_stop(j);
		return BERTH_ERROR;
	}
	*out = j;
	return 0;
}

int berth_jobs_submit(struct berth_jobs *j, berth_job_fn fn, void *arg)
{
	pthread_mutex_lock(&j->lock);
	if (j->queued >= MAX_QUEUED || j->stopping) {
		pthread_mutex_unlock(&j->lock);
		return BERTH_EBUSY;
	}
	struct job *job = berth_calloc(1, sizeof(*job));
	job->fn = fn;
	job->arg = arg;
	*j->tail = job;
	j->tail = &job->next;
	j->queued++;
	pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->lock);
	return 0;
}

/* A job berth_jobs_run waits for. */
struct waited {
	berth_job_fn fn;
	void *arg;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done;
};

static void run_waited(void *arg)
{
	struct waited *w = arg;
	w->fn(w->arg);
	pthread_mutex_lock(&w->lock);
	w->done = 1;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

void berth_jobs_run(struct berth_jobs *j, berth_job_fn fn, void *arg)
{
	struct waited w = { .fn = fn, .arg = arg };
	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	if (berth_jobs_submit(j, run_waited, &w) < 0) {
		fn(arg);
	} else {
		pthread_mutex_lock(&w.lock);
		while (!w.done)
			pthread_cond_wait(&w.cond, &w.lock);
		pthread_mutex_unlock(&w.lock);
	}
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.lock);
}

void berth_jobs_stop(struct berth_jobs *j)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->lock);
	j->stopping = 1;
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
	for (size_t i = 0; i < j->n; i++)
		pthread_join(j->threads[i], NULL);
	pthread_cond_destroy(&j->cond);
	pthread_mutex_destroy(&j->lock);
	free(j->threads);
	free(j);
}
