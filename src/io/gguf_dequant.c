// gguf_dequant.c: GGUF tensor data to float32.
// Block layouts (ggml): each block of QK elements is stored as
//   Q8_0 (32 elems, 34 bytes): f16 d, int8 q[32];             x = d * q
//   Q4_0 (32 elems, 18 bytes): f16 d, u8 qs[16];              low nibbles are
//        elements 0..15, high nibbles 16..31;                  x = d * (nibble - 8)
//   Q4_K (256 elems, 144 bytes): f16 d, f16 dmin, u8 scales[12] (eight 6-bit
//        scales and eight 6-bit mins), u8 qs[128]; sub-block j (32 elems) is
//        x = d*sc[j]*nibble - dmin*m[j], qs chunk c (32 bytes) holding sub-block
//        2c in its low nibbles and 2c+1 in its high nibbles
//   Q6_K (256 elems, 210 bytes): u8 ql[128] (low 4 bits), u8 qh[64] (high 2
//        bits), int8 scales[16] (one per 16 elems), f16 d; x = d*sc*(q - 32)
#include "io/gguf.h"

#include "io/half.h"

#include <math.h>
#include <string.h>

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static void deq_q8_0(const uint8_t *b, float *y) { // one block -> 32 floats
    float d = qs_f16_to_f32(rd16(b));
    for (int j = 0; j < 32; j++) y[j] = d * (float)(int8_t)b[2 + j];
}

static void deq_q4_0(const uint8_t *b, float *y) {
    float d = qs_f16_to_f32(rd16(b));
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)((b[2 + j] & 0x0f) - 8);
        y[j + 16] = d * (float)((b[2 + j] >> 4) - 8);
    }
}

// 6-bit scale and min of sub-block j from the 12 packed bytes of a Q4_K block:
// bytes 0..3 hold scales 0..3 (low 6 bits), bytes 4..7 mins 0..3 (low 6 bits);
// sub-blocks 4..7 take their low 4 bits from bytes 8..11 (scale: low nibble,
// min: high nibble) and their high 2 bits from the top bits of bytes 0..7.
static void k4_scale_min(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

static void deq_q4_k(const uint8_t *b, float *y) {
    float d = qs_f16_to_f32(rd16(b)), dmin = qs_f16_to_f32(rd16(b + 2));
    const uint8_t *sc = b + 4, *q = b + 16;
    for (int c = 0; c < 4; c++) { // 4 chunks of 32 bytes = 64 elements
        int s0, m0, s1, m1;
        k4_scale_min(sc, 2 * c, &s0, &m0);
        k4_scale_min(sc, 2 * c + 1, &s1, &m1);
        for (int l = 0; l < 32; l++) {
            y[64 * c + l] = d * (float)s0 * (float)(q[32 * c + l] & 0x0f) - dmin * (float)m0;
            y[64 * c + 32 + l] = d * (float)s1 * (float)(q[32 * c + l] >> 4) - dmin * (float)m1;
        }
    }
}

static void deq_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = qs_f16_to_f32(rd16(b + 208));
    for (int h = 0; h < 2; h++) { // two halves of 128 elements
        const uint8_t *L = ql + 64 * h, *H = qh + 32 * h;
        const int8_t *S = sc + 8 * h;
        float *o = y + 128 * h;
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = ((L[l] & 0x0f) | ((H[l] >> 0 & 3) << 4)) - 32;
            int q2 = ((L[l + 32] & 0x0f) | ((H[l] >> 2 & 3) << 4)) - 32;
            int q3 = ((L[l] >> 4) | ((H[l] >> 4 & 3) << 4)) - 32;
            int q4 = ((L[l + 32] >> 4) | ((H[l] >> 6 & 3) << 4)) - 32;
            o[l] = d * (float)S[is] * (float)q1;
            o[l + 32] = d * (float)S[is + 2] * (float)q2;
            o[l + 64] = d * (float)S[is + 4] * (float)q3;
            o[l + 96] = d * (float)S[is + 6] * (float)q4;
        }
    }
}

qs_status qs_gguf_tensor_f32(const qs_gguf *g, const qs_gguf_tensor *t, float *out) {
    const uint8_t *p = t->data;
    size_t n = (size_t)t->numel;
    void (*blockf)(const uint8_t *, float *) = NULL;
    switch (t->type) {
    case QS_GGML_F32: memcpy(out, p, n * 4); return QS_OK;
    case QS_GGML_F16:
        for (size_t i = 0; i < n; i++) out[i] = qs_f16_to_f32(rd16(p + 2 * i));
        return QS_OK;
    case QS_GGML_BF16:
        for (size_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)rd16(p + 2 * i) << 16;
            memcpy(&out[i], &u, 4);
        }
        return QS_OK;
    case QS_GGML_Q8_0: blockf = deq_q8_0; break;
    case QS_GGML_Q4_0: blockf = deq_q4_0; break;
    case QS_GGML_Q4_K: blockf = deq_q4_k; break;
    case QS_GGML_Q6_K: blockf = deq_q6_k; break;
    default: {
        const char *nm = qs_ggml_type_name(t->type);
        return qs_error(QS_ERR_UNSUPPORTED, "%s: tensor '%s': type %s (%u) cannot be dequantised by qstar", g->path,
                        t->name, nm ? nm : "unknown", t->type);
    }
    }
    uint32_t blk, bytes;
    qs_ggml_type_size(t->type, &blk, &bytes);
    size_t nb = n / blk;
    for (size_t i = 0; i < nb; i++) blockf(p + i * bytes, out + i * blk);
    return QS_OK;
}
