// mixhead.h: the talk head of Quiet-STaR. For N positions it blends the base
// hidden state hb with the post-thought hidden state ht:
//   w  = W3 . relu(W2 . relu(W1 . [hb ; ht] + b1) + b2)    (sigmoid(w) if asked)
//   hm = (1 - w) * hb + w * ht
#ifndef QS_QUIETSTAR_MIXHEAD_H
#define QS_QUIETSTAR_MIXHEAD_H

#include "model/params.h"
#include "ops/ops.h"

typedef struct {
    float *cat;      // [N,2H] head input [hb ; ht]
    float *a1, *a2;  // [N,H]  relu activations
    float *w;        // [N]    mixing weights
    float *da, *dcat; // scratch for the backward: [N,H], [N,2H]
} qs_mix_acts;

// hb, ht: [N,H]; writes acts and hm [N,H].
void mixhead_forward(const qs_ptrs *p, int H, int N, const float *hb, const float *ht, int sigmoid,
                     qs_mix_acts *a, float *hm);
// dhm [N,H] -> dhb, dht [N,H] (accumulated) and head parameter grads g (accumulated).
void mixhead_backward(const qs_ptrs *p, const qs_ptrs *g, int H, int N, const float *hb, const float *ht,
                      const float *dhm, int sigmoid, qs_mix_acts *a, float *dhb, float *dht);
// The same with mm's GEMM precision (NULL: fp32).
void mixhead_forward_mm(const qs_mm *mm, const qs_ptrs *p, int H, int N, const float *hb, const float *ht,
                        int sigmoid, qs_mix_acts *a, float *hm);
void mixhead_backward_mm(const qs_mm *mm, const qs_ptrs *p, const qs_ptrs *g, int H, int N, const float *hb,
                         const float *ht, const float *dhm, int sigmoid, qs_mix_acts *a, float *dhb, float *dht);

#endif
