/* The mixer that the audio callback runs, in C, so that audio never waits for Python's GIL.
 *
 * Python (dkvae_live/mixer.py) owns every buffer and talks to this file through ctypes:
 *   - the render worker fills a sound record and publishes it on a note (an atomic swap);
 *     a record may carry on another (dk_continue: a change's first sound is published as its
 *     beginning, then whole), and the voices playing that one move to it where they are;
 *   - the MIDI and OSC threads push note-on and stop-all events into a ring buffer (one
 *     producer at a time: the calls are made with the GIL held);
 *   - the audio backend calls dk_mix (PortAudio, offline render) or hands dk_jack_process to
 *     JACK as the process callback itself, so on JACK the audio thread never enters Python.
 *     There it also reads the daemon's JACK MIDI input: a note-on plays in the very cycle it
 *     arrives, and so does all notes off or all sound off (CC 123, 120); every MIDI event goes
 *     on to Python (counting, the other controllers, learn, program changes) through a second
 *     ring, whose reader sleeps until the callback wakes it. Nothing comes back: what Python
 *     does with MIDI reaches the audio as a new sound published, never as an event pushed.
 * The audio side takes no lock, allocates nothing and never blocks. A sound record is reused
 * only after its note has moved on, one audio cycle has passed and no voice plays it; the
 * buffers of a replaced sound are Python's, freed by a Python thread (Mixer.sweep), never here.
 *
 * Each block: play the pending events, move the voices of records carried on, mix the voices
 * in chunks of DK_CHUNK frames, apply the master gain and the limiter (per chunk, so live and
 * offline renders limit alike), clip.
 * Sounds are 16-bit samples with a scale per variant (pad_sound.py), as a hardware sampler
 * keeps them: half the memory of float samples, the mix itself in float.
 *
 * Output pairs: pair 0, the main pair, is the whole mix, and the only one dk_mix plays
 * (PortAudio, offline render). On JACK up to DK_PAIRS - 1 more (--outputs, outputs.py) carry
 * each the voices of the sounds routed to it, which play on the main pair too. A pair is
 * mixed and written only in a cycle in which a port of it is connected; a voice with no pair
 * connected only moves on. Python counts the connections (JackOutput, from JACK's
 * port-connect notifications) into an atomic flag per pair: the callback does not call
 * jack_port_connected, which takes a lock in PipeWire's JACK. A pair that goes off leaves
 * silence in its ports once, so a reader connected before we hear of it reads silence, not
 * the last block again. Each pair has the master gain and a limiter of its own: a pair is a
 * track heard or recorded alone, so it keeps the promise never to go over DK_LIMIT by itself,
 * and a loud kick does not duck the hi-hat on the hi-hat's own track, as one limiter shared
 * by all pairs would. A pair is added while the callback runs: its ports are written, then it
 * is counted (release, acquire); pairs are never taken away.
 *
 * Audit of the callback's path (dk_jack_process and all it calls; dk_mix is the same minus
 * the JACK calls), 2026-12-06:
 *   - allocation, free: none. Every buffer of ours is allocated and its pages touched in
 *     dk_new; sound buffers are allocated and freed by Python threads only (checked by
 *     tests/test_callback_jack.py, which counts malloc/free/munmap/locks on this thread).
 *   - locks: none. Shared state is C11 atomics, lock-free on every target we build for
 *     (the static_asserts below); rings are single-producer, single-consumer.
 *   - system calls: one, sem_post (a futex wake) in read_midi, at most once a cycle and only
 *     when MIDI arrived while the MIDI thread sleeps; it wakes, it never waits.
 *   - libjack: jack_port_get_buffer (for the pairs connected, and once for a pair that went
 *     off), jack_midi_get_event_count, jack_midi_event_get, which read the port buffers of
 *     this cycle and take no lock. Which pairs are connected is an atomic load.
 *   - libm: powf, once per note-on. Nothing else leaves this file.
 *   - page faults: none expected: our state is touched in dk_new, sound buffers were written
 *     by the render worker before they were published.
 * dk_jack_thread_init names each thread libjack makes for us DK_JACK_THREAD, once, before the
 * thread's loop; Python then names the process thread itself (audio.py, AUDIO_THREAD).
 */
#define _GNU_SOURCE /* pthread_setname_np */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DK_NOTES 128
#define DK_MAX_VARIANTS 64
#define DK_EVENTS 4096 /* a power of two */
#define DK_CHUNK 64
#define DK_LIMIT 0.98f
#define DK_MIDI_EVENTS 8192 /* a power of two */
#define DK_MIDI_BYTES 8     /* bytes kept of each MIDI event (SysEx is only counted) */
#define DK_ALL_CHANNELS -1
#define DK_ALL_SOUND_OFF 120 /* controllers that stop every voice: midi_in.STOP_ALL too */
#define DK_ALL_NOTES_OFF 123
#define DK_JACK_THREAD "dkvae-jack" /* the name of libjack's threads for us (ps -L, top -H) */
#define DK_PAIRS 33 /* output pairs: the main one (0, the whole mix) and up to 32 more (JACK) */

static_assert(ATOMIC_INT_LOCK_FREE == 2, "atomic int must be lock-free");
static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "atomic long long must be lock-free");

enum { DK_NOTE_ON = 1, DK_STOP_ALL = 2 };

typedef struct {
    const int16_t *variant[DK_MAX_VARIANTS]; /* each [layers][length[v]], C order */
    float scale[DK_MAX_VARIANTS];            /* a sample of variant v is worth scale[v] */
    int length[DK_MAX_VARIANTS];
    int variants, layers;
    float gain_left, gain_right, velocity_curve;
    int choke_group, polyphony;
    int pair; /* the output pair it also plays on; 0: the main pair only */
    /* the record that carries this one on (dk_continue), -1: none; written by Python */
    atomic_int continued_by;
} dk_sound;

typedef struct {
    int kind, note, velocity;
} dk_event;

typedef struct {
    int sound; /* record index, -1: the slot is free */
    const int16_t *a, *b; /* the two velocity layers crossfaded; b may be NULL */
    float weight_a, weight_b, left, right; /* the weights include the variant's scale */
    int length, pos, fade_pos; /* fade_pos -1: not fading */
    int note, choke_group, pair;
    int variant, layer; /* where a and b lie in the record: a hand-over keeps them */
    uint64_t age;
} dk_voice;

typedef struct {
    uint8_t data[DK_MIDI_BYTES];
    uint32_t size; /* the event's whole size */
} dk_midi;

/* jack_midi_event_t and the two libjack functions that read a MIDI port's buffer */
typedef struct {
    uint32_t time;
    size_t size;
    uint8_t *buffer;
} dk_jack_midi_event;
typedef void *(*dk_get_buffer)(void *port, uint32_t frames);
typedef uint32_t (*dk_midi_count)(void *port_buffer);
typedef int (*dk_midi_get)(dk_jack_midi_event *event, void *port_buffer, uint32_t index);

/* A stereo pair of outputs: its own mix, its own limiter. */
typedef struct {
    float mix[2][DK_CHUNK];
    float limiter_gain;
    int on;               /* mixed and written this block; the audio side's */
    int silent;           /* JACK: its port buffers hold silence (it is off); the audio side's */
    atomic_int connected; /* JACK: a port of it is connected; written by Python */
    void *ports[2];       /* jack_port_t *, set before the pair is counted in n_pairs */
} dk_pair;

typedef struct {
    int n_sounds, slots, max_voices, fade_samples;
    dk_sound *sounds;
    atomic_int *sound_voices; /* voices playing each record; written by the audio side */
    atomic_int pad[DK_NOTES]; /* the record each note plays, -1: none */
    atomic_uint hits[DK_NOTES];
    dk_event events[DK_EVENTS];
    atomic_uint events_head, events_tail;
    dk_voice *voices;
    _Atomic float master_gain;
    float release_per_sample;
    uint64_t clock;
    atomic_ullong cycles, notes_played, notes_without_sound, voices_stolen, limited_blocks;
    atomic_int active;
    int in_use; /* slots with a voice, sounding or fading; the audio side's own */
    dk_pair pairs[DK_PAIRS];
    atomic_int n_pairs;           /* pairs whose ports are set; the main pair always counts */
    float voice[DK_CHUNK];        /* one voice's chunk, before it is added to its pairs */
    float *buffers[2 * DK_PAIRS]; /* this JACK cycle's port buffers, NULL: not written */
    dk_get_buffer get_buffer;
    void *midi_port; /* NULL: no MIDI in this callback */
    dk_midi_count midi_count;
    dk_midi_get midi_get;
    atomic_int midi_channel; /* 0..15 or DK_ALL_CHANNELS */
    dk_midi midi[DK_MIDI_EVENTS];
    atomic_uint midi_head, midi_tail;
    atomic_ullong midi_overflow;
    sem_t midi_ready;       /* posted when MIDI arrived for a reader that sleeps */
    atomic_int midi_asleep; /* 1: the reader sleeps, or is about to, on midi_ready */
} dk_mixer;

/* -- set-up, from Python ------------------------------------------------------------------ */

static void free_memory(dk_mixer *m);

/* Write to every page now, so that the audio thread never takes a page fault on first use. */
static void touch(void *memory, size_t size) {
    volatile char *bytes = memory;
    for (size_t i = 0; i < size; i += 4096) bytes[i] = 0;
}

dk_mixer *dk_new(int polyphony, int samplerate, int fade_samples, float release_seconds,
                 int n_sounds) {
    dk_mixer *m = calloc(1, sizeof(dk_mixer));
    if (m == NULL) return NULL;
    m->max_voices = polyphony;
    m->slots = 2 * polyphony; /* as many again for voices fading out */
    m->fade_samples = fade_samples > 1 ? fade_samples : 2;
    m->n_sounds = n_sounds;
    m->sounds = calloc((size_t)n_sounds, sizeof(dk_sound));
    m->sound_voices = calloc((size_t)n_sounds, sizeof(atomic_int));
    m->voices = calloc((size_t)m->slots, sizeof(dk_voice));
    if (m->sounds == NULL || m->sound_voices == NULL || m->voices == NULL) {
        free_memory(m);
        return NULL;
    }
    touch(m, sizeof(dk_mixer));
    touch(m->sounds, (size_t)n_sounds * sizeof(dk_sound));
    touch(m->sound_voices, (size_t)n_sounds * sizeof(atomic_int));
    touch(m->voices, (size_t)m->slots * sizeof(dk_voice));
    for (int i = 0; i < DK_NOTES; i++) atomic_init(&m->pad[i], -1);
    for (int i = 0; i < n_sounds; i++) atomic_init(&m->sounds[i].continued_by, -1);
    for (int s = 0; s < m->slots; s++) m->voices[s].sound = -1;
    atomic_init(&m->master_gain, 0.5f);
    atomic_init(&m->midi_channel, DK_ALL_CHANNELS);
    atomic_init(&m->n_pairs, 1);
    for (int p = 0; p < DK_PAIRS; p++) m->pairs[p].limiter_gain = 1.0f;
    m->release_per_sample = 1.0f / (release_seconds * (float)samplerate);
    if (sem_init(&m->midi_ready, 0, 0) != 0) {
        free_memory(m);
        return NULL;
    }
    return m;
}

void dk_free(dk_mixer *m) {
    if (m == NULL) return;
    sem_destroy(&m->midi_ready);
    free_memory(m);
}

/* The arrays and the mixer itself. */
static void free_memory(dk_mixer *m) {
    free(m->sounds);
    free(m->sound_voices);
    free(m->voices);
    free(m);
}

void dk_set_master_gain(dk_mixer *m, float gain) { atomic_store(&m->master_gain, gain); }

/* Fill record `id` (one that no note plays and no voice uses); returns 0, or -1 if bad. */
int dk_set_sound(dk_mixer *m, int id, int variants, int layers, const int16_t **data,
                 const float *scales, const int *lengths, float gain_left, float gain_right, int choke_group,
                 int polyphony, float velocity_curve, int pair) {
    if (id < 0 || id >= m->n_sounds || variants < 1 || variants > DK_MAX_VARIANTS || layers < 1 ||
        pair < 0 || pair >= DK_PAIRS)
        return -1;
    dk_sound *s = &m->sounds[id];
    for (int v = 0; v < variants; v++) {
        s->variant[v] = data[v];
        s->scale[v] = scales[v];
        s->length[v] = lengths[v];
    }
    s->variants = variants;
    s->layers = layers;
    s->gain_left = gain_left;
    s->gain_right = gain_right;
    s->choke_group = choke_group;
    s->polyphony = polyphony > 0 ? polyphony : 1;
    s->velocity_curve = velocity_curve;
    s->pair = pair;
    atomic_store_explicit(&s->continued_by, -1, memory_order_relaxed);
    return 0;
}

/* Record `next` carries record `id` on: the same variants, layers and scales, each variant as
 * long or longer, the same samples for as long as `id` is but its last fade_samples (which
 * fade out: the end of a sound whose rest comes later). Each voice playing `id` moves to
 * `next` at the start of the next block, where it is, unless it has reached that fade. */
void dk_continue(dk_mixer *m, int id, int next) {
    if (id >= 0 && id < m->n_sounds && next >= 0 && next < m->n_sounds)
        atomic_store_explicit(&m->sounds[id].continued_by, next, memory_order_release);
}

/* Note `note` plays record `id` (-1: nothing) from the next block on. */
void dk_publish(dk_mixer *m, int note, int id) { atomic_store(&m->pad[note & 127], id); }

int dk_sound_voices(dk_mixer *m, int id) { return atomic_load(&m->sound_voices[id]); }

uint64_t dk_cycles(dk_mixer *m) { return atomic_load(&m->cycles); }

/* Queue an event for the next block; -1 when the queue is full. */
int dk_push(dk_mixer *m, int kind, int note, int velocity) {
    unsigned head = atomic_load_explicit(&m->events_head, memory_order_relaxed);
    unsigned tail = atomic_load_explicit(&m->events_tail, memory_order_acquire);
    if (head - tail >= DK_EVENTS) return -1;
    m->events[head & (DK_EVENTS - 1)] = (dk_event){kind, note & 127, velocity};
    atomic_store_explicit(&m->events_head, head + 1, memory_order_release);
    return 0;
}

int dk_pending(dk_mixer *m) {
    return (int)(atomic_load(&m->events_head) - atomic_load(&m->events_tail));
}

enum {
    DK_NOTES_PLAYED,
    DK_NOTES_WITHOUT_SOUND,
    DK_VOICES_STOLEN,
    DK_LIMITED_BLOCKS,
    DK_VOICES_ACTIVE,
    DK_MIDI_OVERFLOW
};

uint64_t dk_counter(dk_mixer *m, int which) {
    switch (which) {
    case DK_NOTES_PLAYED: return atomic_load(&m->notes_played);
    case DK_NOTES_WITHOUT_SOUND: return atomic_load(&m->notes_without_sound);
    case DK_VOICES_STOLEN: return atomic_load(&m->voices_stolen);
    case DK_LIMITED_BLOCKS: return atomic_load(&m->limited_blocks);
    case DK_VOICES_ACTIVE: return (uint64_t)atomic_load(&m->active);
    case DK_MIDI_OVERFLOW: return atomic_load(&m->midi_overflow);
    default: return 0;
    }
}

unsigned dk_hits(dk_mixer *m, int note) { return atomic_load(&m->hits[note & 127]); }

/* The main pair's limiter (the stereo mix), as of the last block. */
float dk_limiter_gain(dk_mixer *m) { return m->pairs[0].limiter_gain; }

int dk_output_pairs(void) { return DK_PAIRS; }

/* -- the audio side ----------------------------------------------------------------------- */

static void fade(dk_voice *v) {
    if (v->fade_pos < 0) v->fade_pos = 0;
}

static void release(dk_mixer *m, dk_voice *v) {
    if (v->sound >= 0) {
        atomic_fetch_sub_explicit(&m->sound_voices[v->sound], 1, memory_order_relaxed);
        m->in_use--;
    }
    v->sound = -1;
    v->a = v->b = NULL;
}

/* The oldest voice sounding (not fading) of `note`, or of every note when note < 0. */
static dk_voice *oldest(dk_mixer *m, int note, int *count) {
    dk_voice *found = NULL;
    *count = 0;
    for (int s = 0; s < m->slots; s++) {
        dk_voice *v = &m->voices[s];
        if (v->sound < 0 || v->fade_pos >= 0 || (note >= 0 && v->note != note)) continue;
        (*count)++;
        if (found == NULL || v->age < found->age) found = v;
    }
    return found;
}

/* A free slot, or else the fading voice furthest into its fade (nearly silent). */
static dk_voice *free_slot(dk_mixer *m) {
    dk_voice *best = &m->voices[0];
    int best_fade = -1;
    for (int s = 0; s < m->slots; s++) {
        dk_voice *v = &m->voices[s];
        if (v->sound < 0) return v;
        if (v->fade_pos > best_fade) {
            best = v;
            best_fade = v->fade_pos;
        }
    }
    release(m, best);
    return best;
}

static void note_on(dk_mixer *m, int note, int velocity) {
    int id = atomic_load_explicit(&m->pad[note], memory_order_acquire);
    if (id < 0) {
        atomic_fetch_add(&m->notes_without_sound, 1);
        return;
    }
    const dk_sound *sound = &m->sounds[id];
    int count;
    if (sound->choke_group > 0) {
        for (int s = 0; s < m->slots; s++) {
            dk_voice *v = &m->voices[s];
            if (v->sound >= 0 && v->choke_group == sound->choke_group && v->note != note) fade(v);
        }
    }
    dk_voice *old = oldest(m, note, &count);
    if (count >= sound->polyphony) fade(old);
    old = oldest(m, -1, &count);
    if (count >= m->max_voices) {
        fade(old);
        atomic_fetch_add(&m->voices_stolen, 1);
    }
    dk_voice *v = free_slot(m);
    unsigned hit = atomic_load(&m->hits[note]);
    int variant = (int)(hit % (unsigned)sound->variants);
    int length = sound->length[variant];
    float position = (float)(velocity - 1) / 126.0f * (float)(sound->layers - 1);
    int low = (int)position;
    float weight = position - (float)low;
    v->variant = variant;
    v->layer = low;
    v->a = sound->variant[variant] + (size_t)low * (size_t)length;
    v->b = weight > 0.0f ? v->a + length : NULL;
    v->weight_a = (1.0f - weight) * sound->scale[variant];
    v->weight_b = weight * sound->scale[variant];
    float level = powf((float)velocity / 127.0f, sound->velocity_curve);
    v->left = sound->gain_left * level;
    v->right = sound->gain_right * level;
    v->length = length;
    v->pos = 0;
    v->fade_pos = -1;
    v->note = note;
    v->choke_group = sound->choke_group;
    v->pair = sound->pair;
    v->age = ++m->clock;
    v->sound = id;
    m->in_use++;
    atomic_fetch_add_explicit(&m->sound_voices[id], 1, memory_order_relaxed);
    atomic_store(&m->hits[note], hit + 1);
    atomic_fetch_add(&m->notes_played, 1);
}

static void stop_all(dk_mixer *m) {
    for (int s = 0; s < m->slots; s++)
        if (m->voices[s].sound >= 0) fade(&m->voices[s]);
}

/* Move the voices whose record was carried on (dk_continue) to the record that carries it. */
static void hand_over(dk_mixer *m) {
    for (int s = 0; s < m->slots; s++) {
        dk_voice *v = &m->voices[s];
        if (v->sound < 0) continue;
        int next =
            atomic_load_explicit(&m->sounds[v->sound].continued_by, memory_order_acquire);
        if (next < 0 || v->pos >= v->length - m->fade_samples) continue;
        const dk_sound *sound = &m->sounds[next];
        int length = sound->length[v->variant];
        if (length < v->length) continue;
        v->a = sound->variant[v->variant] + (size_t)v->layer * (size_t)length;
        if (v->b) v->b = v->a + length;
        v->length = length;
        atomic_fetch_sub_explicit(&m->sound_voices[v->sound], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&m->sound_voices[next], 1, memory_order_relaxed);
        v->sound = next;
    }
}

static void play_events(dk_mixer *m) {
    unsigned tail = atomic_load_explicit(&m->events_tail, memory_order_relaxed);
    unsigned head = atomic_load_explicit(&m->events_head, memory_order_acquire);
    for (; tail != head; tail++) {
        const dk_event *e = &m->events[tail & (DK_EVENTS - 1)];
        int velocity = e->velocity < 1 ? 1 : e->velocity > 127 ? 127 : e->velocity;
        if (e->kind == DK_NOTE_ON) {
            note_on(m, e->note, velocity);
        } else if (e->kind == DK_STOP_ALL) {
            stop_all(m);
        }
    }
    atomic_store_explicit(&m->events_tail, tail, memory_order_release);
}

static void add_voice(dk_pair *pair, const float *x, int n, float left, float right) {
    for (int i = 0; i < n; i++) {
        pair->mix[0][i] += x[i] * left;
        pair->mix[1][i] += x[i] * right;
    }
}

/* Mix every voice into the main pair and its own pair (those of the first `n_pairs` that are
 * on) for `frames` (<= DK_CHUNK) frames. A voice with no pair on still moves on, unheard. */
static void mix_voices(dk_mixer *m, int n_pairs, int frames) {
    for (int p = 0; p < n_pairs; p++)
        if (m->pairs[p].on) memset(m->pairs[p].mix, 0, sizeof(m->pairs[p].mix));
    dk_pair *main = m->pairs[0].on ? &m->pairs[0] : NULL;
    float *x = m->voice;
    const float fade_step = 1.0f / (float)(m->fade_samples - 1);
    for (int s = 0; s < m->slots; s++) {
        dk_voice *v = &m->voices[s];
        if (v->sound < 0) continue;
        int n = v->length - v->pos;
        if (n > frames) n = frames;
        dk_pair *own = v->pair > 0 && v->pair < n_pairs && m->pairs[v->pair].on
                           ? &m->pairs[v->pair]
                           : NULL;
        if (main != NULL || own != NULL) {
            const int16_t *a = v->a + v->pos, *b = v->b ? v->b + v->pos : NULL;
            for (int i = 0; i < n; i++) {
                x[i] = (float)a[i] * v->weight_a;
                if (b) x[i] += (float)b[i] * v->weight_b;
                if (v->fade_pos >= 0) {
                    int f = v->fade_pos + i;
                    x[i] *= f < m->fade_samples ? 1.0f - (float)f * fade_step : 0.0f;
                }
            }
            if (main != NULL) add_voice(main, x, n, v->left, v->right);
            if (own != NULL) add_voice(own, x, n, v->left, v->right);
        }
        v->pos += n;
        if (v->fade_pos >= 0) v->fade_pos += n;
        if (v->pos >= v->length || v->fade_pos >= m->fade_samples) release(m, v);
    }
}

/* Master gain and the limiter of one pair: when a chunk would go over DK_LIMIT its gain drops
 * at once (that only happens when new hits start, which mask it), then glides back up; then a
 * clip for anything faster than one chunk. Only the main pair's limiting is counted. */
static void finish_chunk(dk_mixer *m, dk_pair *pair, int frames) {
    float gain = atomic_load_explicit(&m->master_gain, memory_order_relaxed);
    float peak = 0.0f;
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < frames; i++) {
            pair->mix[c][i] *= gain;
            float x = fabsf(pair->mix[c][i]);
            if (x > peak) peak = x;
        }
    float wanted = peak > DK_LIMIT ? DK_LIMIT / peak : 1.0f;
    float first = pair->limiter_gain, last;
    if (wanted < first) {
        first = last = wanted;
        if (pair == &m->pairs[0]) atomic_fetch_add(&m->limited_blocks, 1);
    } else {
        last = first + m->release_per_sample * (float)frames;
        if (last > wanted) last = wanted;
    }
    if (first != 1.0f || last != 1.0f) {
        for (int i = 0; i < frames; i++) {
            float g = first + (last - first) * (float)(i + 1) / (float)frames;
            pair->mix[0][i] *= g;
            pair->mix[1][i] *= g;
        }
    }
    pair->limiter_gain = last;
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < frames; i++)
            pair->mix[c][i] = fminf(1.0f, fmaxf(-1.0f, pair->mix[c][i]));
}

/* One block: events, then chunks mixed and finished, each handed to `write`. The first
 * `n_pairs` pairs are played, those that are on mixed and written. */
typedef void (*dk_writer)(dk_mixer *m, void *out, int offset, int frames, int channels);

static void run(dk_mixer *m, void *out, int frames, int channels, int n_pairs, dk_writer write) {
    play_events(m);
    hand_over(m);
    int resting = m->in_use == 0;
    for (int p = 0; p < n_pairs; p++) {
        dk_pair *pair = &m->pairs[p];
        if (!pair->on) pair->limiter_gain = 1.0f; /* nobody hears it: it starts afresh */
        if (pair->limiter_gain != 1.0f) resting = 0;
    }
    if (resting) { /* at rest: silence, the same as mixed */
        for (int p = 0; p < n_pairs; p++)
            if (m->pairs[p].on) memset(m->pairs[p].mix, 0, sizeof(m->pairs[p].mix));
        for (int done = 0; done < frames; done += DK_CHUNK)
            write(m, out, done, frames - done < DK_CHUNK ? frames - done : DK_CHUNK, channels);
        atomic_store_explicit(&m->active, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&m->cycles, 1, memory_order_release);
        return;
    }
    for (int done = 0; done < frames; done += DK_CHUNK) {
        int n = frames - done < DK_CHUNK ? frames - done : DK_CHUNK;
        mix_voices(m, n_pairs, n);
        for (int p = 0; p < n_pairs; p++)
            if (m->pairs[p].on) finish_chunk(m, &m->pairs[p], n);
        write(m, out, done, n, channels);
    }
    int active = 0;
    for (int s = 0; s < m->slots; s++)
        if (m->voices[s].sound >= 0 && m->voices[s].fade_pos < 0) active++;
    atomic_store_explicit(&m->active, active, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->cycles, 1, memory_order_release);
}

/* Interleaved [frames][channels], the main pair; channels past the second get silence. */
static void write_interleaved(dk_mixer *m, void *out, int offset, int frames, int channels) {
    for (int i = 0; i < frames; i++) {
        float *frame = (float *)out + (size_t)(offset + i) * (size_t)channels;
        for (int c = 0; c < channels; c++) frame[c] = c < 2 ? m->pairs[0].mix[c][i] : 0.0f;
    }
}

/* PortAudio and the offline render: the main pair alone, all pads summed, as always. */
void dk_mix(dk_mixer *m, float *out, int frames, int channels) {
    m->pairs[0].on = 1;
    run(m, out, frames, channels, 1, write_interleaved);
}

/* -- JACK: this is the process callback itself ------------------------------------------ */

/* libjack's jack_port_get_buffer. Set before the client is activated. */
void dk_set_jack(dk_mixer *m, dk_get_buffer get_buffer) { m->get_buffer = get_buffer; }

/* The two ports of pair `index` (0: the main pair). A new pair (index n_pairs) may be added
 * while the callback runs: its ports are written before it is counted. An existing pair's
 * ports change only while no callback runs (a new client, before it is activated). */
int dk_set_jack_pair(dk_mixer *m, int index, void *left, void *right) {
    if (index < 0 || index >= DK_PAIRS || index > atomic_load(&m->n_pairs)) return -1;
    dk_pair *pair = &m->pairs[index];
    pair->ports[0] = left;
    pair->ports[1] = right;
    pair->silent = 0; /* new ports: what their buffers hold is not known */
    atomic_store(&pair->connected, 0);
    if (index == atomic_load(&m->n_pairs))
        atomic_store_explicit(&m->n_pairs, index + 1, memory_order_release);
    return 0;
}

/* Whether a port of pair `index` is connected now (Python, from JACK's notifications). */
void dk_set_pair_connected(dk_mixer *m, int index, int connected) {
    if (index >= 0 && index < DK_PAIRS) atomic_store(&m->pairs[index].connected, connected != 0);
}

/* Read MIDI from `port` in the callback (NULL: stop). Set before the client is activated. */
void dk_set_jack_midi(dk_mixer *m, void *port, dk_midi_count count, dk_midi_get get) {
    m->midi_count = count;
    m->midi_get = get;
    m->midi_port = port;
}

/* Which channel's note-ons the callback plays itself: 0..15 or DK_ALL_CHANNELS. */
void dk_set_midi_channel(dk_mixer *m, int channel) { atomic_store(&m->midi_channel, channel); }

/* Up to `max` MIDI events for Python: DK_MIDI_BYTES bytes each into `data`, whole sizes into
 * `sizes`. Returns how many. */
int dk_midi_read(dk_mixer *m, uint8_t *data, uint32_t *sizes, int max) {
    unsigned tail = atomic_load_explicit(&m->midi_tail, memory_order_relaxed);
    unsigned head = atomic_load_explicit(&m->midi_head, memory_order_acquire);
    int n = 0;
    for (; tail != head && n < max; tail++, n++) {
        const dk_midi *e = &m->midi[tail & (DK_MIDI_EVENTS - 1)];
        memcpy(data + (size_t)n * DK_MIDI_BYTES, e->data, DK_MIDI_BYTES);
        sizes[n] = e->size;
    }
    atomic_store_explicit(&m->midi_tail, tail, memory_order_release);
    return n;
}

static int midi_waiting(dk_mixer *m) {
    return atomic_load(&m->midi_head) != atomic_load(&m->midi_tail);
}

/* Sleep until the callback has MIDI for Python, or dk_midi_wake; returns at once if it has
 * some already. Python calls it without the GIL. The flag and the ring's head are read and
 * written in opposite orders by the two sides (sequentially consistent), so an event pushed
 * while the reader goes to sleep is never missed: one side or the other sees it. */
void dk_midi_wait(dk_mixer *m) {
    if (midi_waiting(m)) return;
    atomic_store(&m->midi_asleep, 1);
    if (midi_waiting(m) && atomic_exchange(&m->midi_asleep, 0) == 1) return;
    /* else the callback took the flag and posts (or posted): this wait ends at once */
    while (sem_wait(&m->midi_ready) != 0 && errno == EINTR) {
    }
}

/* End a dk_midi_wait now (the reader is stopping); a later wait may then end at once. */
void dk_midi_wake(dk_mixer *m) { sem_post(&m->midi_ready); }

/* A well-formed note-on on the channel played here: the same test as MidiInput.handle. */
static int plays_note(const uint8_t *b, size_t size, int channel) {
    return size == 3 && (b[0] & 0xF0) == 0x90 && b[1] < 128 &&
           b[2] > 0 && b[2] < 128 && (channel == DK_ALL_CHANNELS || (b[0] & 0x0F) == channel);
}

/* A well-formed all sound off or all notes off on that channel: as in MidiInput.handle. */
static int stops_all(const uint8_t *b, size_t size, int channel) {
    return size == 3 && (b[0] & 0xF0) == 0xB0 &&
           (b[1] == DK_ALL_SOUND_OFF || b[1] == DK_ALL_NOTES_OFF) && b[2] < 128 &&
           (channel == DK_ALL_CHANNELS || (b[0] & 0x0F) == channel);
}

static void read_midi(dk_mixer *m, uint32_t frames) {
    void *buffer = m->get_buffer(m->midi_port, frames);
    uint32_t count = m->midi_count(buffer);
    int channel = atomic_load_explicit(&m->midi_channel, memory_order_relaxed);
    unsigned head = atomic_load_explicit(&m->midi_head, memory_order_relaxed);
    unsigned tail = atomic_load_explicit(&m->midi_tail, memory_order_acquire);
    for (uint32_t i = 0; i < count; i++) {
        dk_jack_midi_event event;
        if (m->midi_get(&event, buffer, i) != 0) continue;
        if (plays_note(event.buffer, event.size, channel))
            note_on(m, event.buffer[1], event.buffer[2]);
        else if (stops_all(event.buffer, event.size, channel))
            stop_all(m);
        if (head - tail >= DK_MIDI_EVENTS) {
            atomic_fetch_add(&m->midi_overflow, 1);
            continue;
        }
        dk_midi *e = &m->midi[head & (DK_MIDI_EVENTS - 1)];
        memset(e->data, 0, DK_MIDI_BYTES);
        memcpy(e->data, event.buffer, event.size < DK_MIDI_BYTES ? event.size : DK_MIDI_BYTES);
        e->size = (uint32_t)event.size;
        head++;
    }
    if (count == 0) return;
    atomic_store(&m->midi_head, head);
    if (atomic_exchange(&m->midi_asleep, 0) == 1) sem_post(&m->midi_ready);
}

/* Each pair that is on into its two port buffers (out: 2 per pair, NULL for one off). */
static void write_ports(dk_mixer *m, void *out, int offset, int frames, int channels) {
    float **buffers = out;
    for (int c = 0; c < channels; c++) {
        const float *mix = m->pairs[c / 2].mix[c % 2];
        if (buffers[c] != NULL) memcpy(buffers[c] + offset, mix, (size_t)frames * sizeof(float));
    }
}

/* libjack calls this once in each thread it makes for the client, before the thread's loop
 * (the process thread's first cycle too): it cannot tell them apart, so name them all. */
void dk_jack_thread_init(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), DK_JACK_THREAD);
}

/* A pair is mixed and written only while a port of it is connected: nobody reads the others,
 * and a voice of theirs costs no more than one of the stereo mode. */
int dk_jack_process(uint32_t frames, void *arg) {
    dk_mixer *m = arg;
    int n_pairs = atomic_load_explicit(&m->n_pairs, memory_order_acquire);
    for (int p = 0; p < n_pairs; p++) {
        dk_pair *pair = &m->pairs[p];
        pair->on = atomic_load_explicit(&pair->connected, memory_order_relaxed);
        for (int c = 0; c < 2; c++) {
            m->buffers[2 * p + c] = NULL;
            if (pair->on) {
                m->buffers[2 * p + c] = m->get_buffer(pair->ports[c], frames);
            } else if (!pair->silent) {
                float *buffer = m->get_buffer(pair->ports[c], frames);
                memset(buffer, 0, (size_t)frames * sizeof(float));
            }
        }
        pair->silent = !pair->on;
    }
    if (m->midi_port != NULL) read_midi(m, frames);
    run(m, m->buffers, (int)frames, 2 * n_pairs, n_pairs, write_ports);
    return 0;
}

/* -- leaving on time: not the mixer's job, but C is where no held GIL can stop it --------- */

static struct timespec exit_delay;
static int exit_code;

static void *exit_later(void *unused) {
    (void)unused;
    while (nanosleep(&exit_delay, &exit_delay) != 0 && errno == EINTR) {
    }
    _exit(exit_code);
    return NULL;
}

/* End the process with `code` after `seconds`, from a thread of its own that needs no GIL. */
int dk_exit_after(double seconds, int code) {
    pthread_t thread;
    exit_delay.tv_sec = (time_t)seconds;
    exit_delay.tv_nsec = (long)((seconds - (double)exit_delay.tv_sec) * 1e9);
    exit_code = code;
    if (pthread_create(&thread, NULL, exit_later, NULL) != 0) return -1;
    pthread_detach(thread);
    return 0;
}

/* -- the module: it only exists so that Python can find this library (ctypes loads it) ---- */

static struct PyModuleDef dk_module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_mixer",
    .m_doc = "The C mixer; used through ctypes by dkvae_live.mixer.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__mixer(void) { return PyModule_Create(&dk_module); }
