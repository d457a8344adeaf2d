/* A JACK MIDI sender for the benchmarks whose process callback is C: it sends any bytes at all
 * (rtmidi refuses messages over 3 bytes that are not SysEx), and no Python runs on a JACK thread
 * (a Python callback costs the graph time of its own, which the fuzz would blame on the daemon).
 *
 *     raw_midi_sender CLIENT_NAME DESTINATION_PORT PER_CYCLE
 *
 * stdin: messages, each a little-endian uint16 length then that many bytes. A length of 0 asks
 * for a report: once every message before it has gone out, "sent N" (N so far) goes to stdout.
 * It prints "ready PORT" once connected, sends at most PER_CYCLE messages a JACK cycle, drops
 * (and counts, in the report) a message longer than the port's buffer can ever hold, and at the
 * end of stdin sends what is queued and exits 0.
 *
 * Built by bench/common.py (raw_midi_sender) with gcc against libjack.so.0. The JACK headers are
 * not installed here, so the few declarations needed are below; they match JACK's ABI. */
#define _DEFAULT_SOURCE /* usleep */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef uint32_t jack_nframes_t;
typedef struct _jack_client jack_client_t;
typedef struct _jack_port jack_port_t;
typedef struct _jack_ringbuffer jack_ringbuffer_t; /* used through pointers only */
typedef int (*JackProcessCallback)(jack_nframes_t nframes, void *arg);

enum { JackNoStartServer = 0x01, JackPortIsOutput = 0x2 };

jack_client_t *jack_client_open(const char *name, int options, int *status, ...);
int jack_client_close(jack_client_t *client);
int jack_set_process_callback(jack_client_t *client, JackProcessCallback cb, void *arg);
int jack_activate(jack_client_t *client);
int jack_deactivate(jack_client_t *client);
jack_port_t *jack_port_register(jack_client_t *client, const char *name, const char *type,
                                unsigned long flags, unsigned long buffer_size);
const char *jack_port_name(const jack_port_t *port);
int jack_connect(jack_client_t *client, const char *source, const char *destination);
void *jack_port_get_buffer(jack_port_t *port, jack_nframes_t frames);
void jack_midi_clear_buffer(void *buffer);
size_t jack_midi_max_event_size(void *buffer);
int jack_midi_event_write(void *buffer, jack_nframes_t time, const unsigned char *data,
                          size_t size);
jack_ringbuffer_t *jack_ringbuffer_create(size_t size);
void jack_ringbuffer_free(jack_ringbuffer_t *rb);
size_t jack_ringbuffer_read_space(const jack_ringbuffer_t *rb);
size_t jack_ringbuffer_write_space(const jack_ringbuffer_t *rb);
size_t jack_ringbuffer_peek(jack_ringbuffer_t *rb, char *dest, size_t cnt);
void jack_ringbuffer_read_advance(jack_ringbuffer_t *rb, size_t cnt);
size_t jack_ringbuffer_write(jack_ringbuffer_t *rb, const char *src, size_t cnt);

#define MAX_MESSAGE 65535
#define RING_BYTES (1 << 22)

static jack_port_t *port;
static jack_ringbuffer_t *ring;
static unsigned per_cycle;
static atomic_ulong sent, dropped;

static int process(jack_nframes_t frames, void *arg) {
    (void)arg;
    static unsigned char record[sizeof(uint16_t) + MAX_MESSAGE]; /* one process thread */
    void *buffer = jack_port_get_buffer(port, frames);
    jack_midi_clear_buffer(buffer);
    size_t biggest = jack_midi_max_event_size(buffer);
    for (unsigned i = 0; i < per_cycle; i++) {
        uint16_t length;
        size_t queued = jack_ringbuffer_read_space(ring);
        if (queued < sizeof length)
            break;
        jack_ringbuffer_peek(ring, (char *)&length, sizeof length);
        if (queued < sizeof length + length)
            break;
        if (length > biggest) { /* could never go out: drop it */
            jack_ringbuffer_read_advance(ring, sizeof length + length);
            atomic_fetch_add(&dropped, 1);
            continue;
        }
        jack_ringbuffer_peek(ring, (char *)record, sizeof length + length);
        jack_nframes_t offset = i < frames ? i : frames - 1;
        if (jack_midi_event_write(buffer, offset, record + sizeof length, length) != 0)
            break; /* this cycle's buffer is full: the rest go next cycle */
        jack_ringbuffer_read_advance(ring, sizeof length + length);
        atomic_fetch_add(&sent, 1);
    }
    return 0;
}

static int read_exactly(unsigned char *dest, size_t count) {
    size_t got = 0;
    while (got < count) {
        ssize_t n = read(STDIN_FILENO, dest + got, count - got);
        if (n <= 0)
            return 0;
        got += (size_t)n;
    }
    return 1;
}

static void wait_until_gone(unsigned long queued) {
    while (atomic_load(&sent) + atomic_load(&dropped) < queued)
        usleep(1000);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s CLIENT_NAME DESTINATION_PORT PER_CYCLE\n", argv[0]);
        return 2;
    }
    per_cycle = (unsigned)strtoul(argv[3], NULL, 10);
    int status = 0;
    jack_client_t *client = jack_client_open(argv[1], JackNoStartServer, &status);
    if (client == NULL) {
        fprintf(stderr, "cannot open a JACK client (status 0x%x): is a server running?\n", status);
        return 1;
    }
    ring = jack_ringbuffer_create(RING_BYTES);
    port = jack_port_register(client, "out", "8 bit raw midi", JackPortIsOutput, 0);
    if (ring == NULL || port == NULL || jack_set_process_callback(client, process, NULL) != 0 ||
        jack_activate(client) != 0) {
        fprintf(stderr, "cannot set up the JACK client\n");
        return 1;
    }
    if (jack_connect(client, jack_port_name(port), argv[2]) != 0) {
        fprintf(stderr, "cannot connect to %s\n", argv[2]);
        return 1;
    }
    printf("ready %s\n", jack_port_name(port));
    fflush(stdout);
    unsigned long queued = 0;
    unsigned char record[sizeof(uint16_t) + MAX_MESSAGE];
    uint16_t length;
    while (read_exactly((unsigned char *)&length, sizeof length)) {
        if (length == 0) {
            wait_until_gone(queued);
            printf("sent %lu dropped %lu\n", atomic_load(&sent), atomic_load(&dropped));
            fflush(stdout);
            continue;
        }
        memcpy(record, &length, sizeof length);
        if (!read_exactly(record + sizeof length, length))
            break;
        while (jack_ringbuffer_write_space(ring) < sizeof length + length)
            usleep(1000);
        jack_ringbuffer_write(ring, (char *)record, sizeof length + length);
        queued++;
    }
    wait_until_gone(queued);
    jack_deactivate(client);
    jack_client_close(client);
    jack_ringbuffer_free(ring);
    return 0;
}
