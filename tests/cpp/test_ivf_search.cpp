// The IVF front end of every ISA this binary has and this CPU runs equals a direct reference: keys
// sum + probe_key computed vector by vector, the topk best by (key desc, storage position asc), written
// by (key desc, id asc). Lists of sizes 0, 1, 31, 32, 33, 100 and 2000 (several kernel chunks), odd and
// even S, shared (nlut = 1) and per-probe tables, probes of -1, list keys above the reservoir threshold
// (so the kernel threshold goes negative), tables of few distinct values (many equal keys: the tie rule
// is exercised), k above the number scanned; S around and far above the old limit of 1028 up to
// kLut4MaxSubspaces with all-127 tables and list keys of 2^23 (keys just below 2^24, written exactly);
// and select_topk_f32 against a stable sort, with many equal scores; ivf_quantize_tables against its
// formula.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include "medqk/medqk.h"
#include "variants.h"

namespace {

struct Cand {
  int64_t key, storage, id;
};

// One configuration: lists of the given sizes, nq queries probing nprobe of them (query 1 leaves its third
// probe out, -1), nlut table sets per query (0: one per probe), tables of few distinct values (levels 4:
// many equal keys, the tie rule), random entries (256) or all 127 (127: the largest sums), list keys in
// 0..max_key (max_key itself included: keys up to 2^23 + 127 d_even); every k in ks checked against the
// reference. Returns the failures.
int check_config(std::mt19937& rng, medqk::Isa isa, std::size_t d, const std::vector<std::size_t>& sizes,
                 std::size_t nlut, int levels, std::size_t nq, std::size_t nprobe, int32_t max_key,
                 const std::vector<std::size_t>& ks, int& cases) {
  int failures = 0;
  const std::size_t nlist = sizes.size();
  const std::size_t d_even = d + (d & 1);
  const std::size_t nl = nlut == 1 ? 1 : nprobe;
  // lists: codes, packed per list, ids (a permutation so that ids are not in scan order)
  std::vector<int64_t> list_blocks(nlist + 1, 0), list_starts(nlist + 1, 0);
  for (std::size_t l = 0; l < nlist; ++l) {
    list_starts[l + 1] = list_starts[l] + static_cast<int64_t>(sizes[l]);
    list_blocks[l + 1] = list_blocks[l] + static_cast<int64_t>((sizes[l] + 31) / 32);
  }
  const std::size_t ntotal = static_cast<std::size_t>(list_starts[nlist]);
  std::vector<uint8_t> codes(ntotal * d);
  for (auto& c : codes) c = rng() & 15;
  std::vector<uint8_t> packed(static_cast<std::size_t>(list_blocks[nlist]) * 16 * d_even);
  for (std::size_t l = 0; l < nlist; ++l) {
    if (sizes[l] == 0) continue;
    medqk::lut4_pack(codes.data() + list_starts[l] * d, sizes[l], d, packed.data() + list_blocks[l] * 16 * d_even);
  }
  std::vector<int64_t> list_ids(ntotal);
  for (std::size_t i = 0; i < ntotal; ++i) list_ids[i] = static_cast<int64_t>(i);
  std::shuffle(list_ids.begin(), list_ids.end(), rng);
  // queries: tables, probes, keys
  std::vector<uint8_t> luts(nq * nl * d_even * 16, 0);
  for (std::size_t t = 0; t < nq * nl; ++t) {
    for (std::size_t i = 0; i < d * 16; ++i) {
      luts[t * d_even * 16 + i] = static_cast<uint8_t>(levels == 127   ? 127
                                                       : levels == 256 ? rng() & 127
                                                                       : (rng() % 4) * 42);
    }
  }
  std::vector<int64_t> probes(nq * nprobe);
  std::vector<int32_t> keys(nq * nprobe);
  for (std::size_t q = 0; q < nq; ++q) {
    std::vector<int64_t> order(nlist);
    for (std::size_t l = 0; l < nlist; ++l) order[l] = static_cast<int64_t>(l);
    std::shuffle(order.begin(), order.end(), rng);
    for (std::size_t p = 0; p < nprobe; ++p) {
      probes[q * nprobe + p] = (q == 1 && p == 2) ? -1 : order[p];
      keys[q * nprobe + p] = p == 0 ? max_key : static_cast<int32_t>(rng() % (static_cast<uint32_t>(max_key) + 1));
    }
  }
  for (std::size_t k : ks) {
    std::vector<float> got(nq * k);
    std::vector<int64_t> ids(nq * k);
    // threads 1: chunks of 64 queries (70: two chunks), groups of up to 4 per list; 2: smaller chunks
    medqk::ivf_lut4_search(isa, luts.data(), nq, d, nl, probes.data(), keys.data(), nprobe, packed.data(),
                           list_blocks.data(), list_starts.data(), list_ids.data(), nlist, k, got.data(), ids.data(),
                           1 + (k % 2));
    ++cases;
    for (std::size_t q = 0; q < nq; ++q) {
      // reference: every probed vector's key; the k best by (key desc, storage asc), then by id
      std::vector<Cand> all;
      for (std::size_t p = 0; p < nprobe; ++p) {
        const int64_t l = probes[q * nprobe + p];
        if (l < 0) continue;
        const uint8_t* lut = luts.data() + (q * nl + (nl == 1 ? 0 : p)) * d_even * 16;
        for (int64_t i = list_starts[l]; i < list_starts[l + 1]; ++i) {
          int64_t s = 0;
          for (std::size_t j = 0; j < d; ++j) s += lut[j * 16 + codes[i * d + j]];
          all.push_back({s + keys[q * nprobe + p], i, list_ids[i]});
        }
      }
      std::sort(all.begin(), all.end(), [](const Cand& a, const Cand& b) {
        return a.key > b.key || (a.key == b.key && a.storage < b.storage);
      });
      all.resize(std::min(all.size(), k));
      std::sort(all.begin(), all.end(),
                [](const Cand& a, const Cand& b) { return a.key > b.key || (a.key == b.key && a.id < b.id); });
      for (std::size_t t = 0; t < k; ++t) {
        // keys below 2^24: the float written must equal the integer key exactly
        const bool have = t < all.size();
        const int64_t wk = have ? all[t].key : 0;
        const int64_t wi = have ? all[t].id : -1;
        const bool key_ok = have ? static_cast<int64_t>(got[q * k + t]) == wk && wk < (int64_t(1) << 24)
                                 : got[q * k + t] == -std::numeric_limits<float>::infinity();
        if (ids[q * k + t] != wi || !key_ok) {
          if (failures++ < 10) {
            std::printf(
                "FAIL isa=%s d=%zu nlut=%zu levels=%d k=%zu q=%zu t=%zu: got (%.1f, %lld) "
                "want (%lld, %lld)\n",
                medqk::isa_name(isa), d, nl, levels, k, q, t, static_cast<double>(got[q * k + t]),
                static_cast<long long>(ids[q * k + t]), static_cast<long long>(wk), static_cast<long long>(wi));
          }
        }
      }
    }
  }
  return failures;
}

}  // namespace

int main() {
  std::mt19937 rng(11);
  int failures = 0, cases = 0;
  const std::vector<std::size_t> sizes = {0, 1, 31, 32, 33, 100, 2000};
  medqk_test::for_each_variant("lut4_scan", [&](medqk::Isa isa, const std::string&) {
    for (std::size_t d : {std::size_t(1), std::size_t(7), std::size_t(16), std::size_t(96)}) {
      for (std::size_t nlut : {std::size_t(1), std::size_t(0)}) {  // 0: one table set per probe
        for (int levels : {4, 256}) {
          for (std::size_t nq : {std::size_t(3), std::size_t(9), std::size_t(70)}) {
            if (nq == 70 && levels == 256) continue;  // keeps the test quick; the many-ties tables stay
            failures += check_config(rng, isa, d, sizes, nlut, levels, nq, 5, 4000, {1, 10, 50, 5000}, cases);
          }
        }
      }
    }
    // d around and far above the old limit of 1028, up to kLut4MaxSubspaces (odd and even): all-127 tables
    // give the largest sums (127 d_even, past 16 bits: the kernels' flushes) and, with list keys up to
    // 2^23, keys just below 2^24 (the float32 exactness the bound keeps); few lists, few vectors
    for (std::size_t d : {std::size_t(1029), std::size_t(1536), std::size_t(4096), medqk::kLut4MaxSubspaces - 1,
                          medqk::kLut4MaxSubspaces}) {
      for (int levels : {127, 256}) {
        for (std::size_t nlut : {std::size_t(1), std::size_t(0)}) {
          failures +=
              check_config(rng, isa, d, {33, 0, 40, 1}, nlut, levels, 5, 3, int32_t(1) << 23, {1, 10, 100}, cases);
        }
      }
    }
  });
  // list selection: the nprobe best scores, ties -> lower list id, against a full sort; scores of few
  // distinct values (ties everywhere, also at the cut), nprobe from 1 to nlist
  for (std::size_t nlist_sel : {std::size_t(1), std::size_t(7), std::size_t(64), std::size_t(1000)}) {
    for (std::size_t np : {std::size_t(1), std::size_t(3), std::size_t(16), std::size_t(100), nlist_sel}) {
      if (np > nlist_sel) continue;
      for (int distinct : {5, 1000000}) {
        const std::size_t nq = 5;
        std::vector<float> ls(nq * nlist_sel);
        for (auto& v : ls) v = static_cast<float>(static_cast<int>(rng() % distinct)) - 2.5f;
        std::vector<float> best(nq * np);
        std::vector<int64_t> lists(nq * np);
        medqk::select_topk_f32(ls.data(), nq, nlist_sel, np, best.data(), lists.data(), 2);
        ++cases;
        {  // the name it had before 0.2 still works (deprecated for one release)
          std::vector<float> best_old(nq * np);
          std::vector<int64_t> lists_old(nq * np);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
          medqk::ivf_select_lists(ls.data(), nq, nlist_sel, np, best_old.data(), lists_old.data(), 1);
#pragma GCC diagnostic pop
          if (best_old != best || lists_old != lists) {
            std::printf("FAIL ivf_select_lists (deprecated name) differs from select_topk_f32\n");
            ++failures;
          }
        }
        for (std::size_t q = 0; q < nq; ++q) {
          std::vector<int64_t> order(nlist_sel);
          for (std::size_t l = 0; l < nlist_sel; ++l) order[l] = static_cast<int64_t>(l);
          const float* row = ls.data() + q * nlist_sel;
          std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return row[a] > row[b]; });
          for (std::size_t t = 0; t < np; ++t) {
            if (lists[q * np + t] != order[t] || best[q * np + t] != row[order[t]]) {
              if (failures++ < 10) {
                std::printf("FAIL select nlist=%zu nprobe=%zu q=%zu t=%zu: got %lld want %lld\n", nlist_sel, np, q, t,
                            static_cast<long long>(lists[q * np + t]), static_cast<long long>(order[t]));
              }
            }
          }
        }
      }
    }
  }
  // table quantization: against the formula with a scalar round-half-even (std::nearbyint), odd and even
  // S, a constant table set (span 0: step 1), entries at exact halves of the step
  for (std::size_t s : {std::size_t(1), std::size_t(5), std::size_t(96)}) {
    for (std::size_t nl : {std::size_t(1), std::size_t(3)}) {
      for (int kind = 0; kind < 3; ++kind) {
        const std::size_t nq = 4, s_even = s + (s & 1);
        std::vector<float> t(nq * nl * s * 16);
        for (auto& v : t) {
          v = kind == 0 ? std::normal_distribution<float>(0.0f, 3.0f)(rng)
                        : (kind == 1 ? 1.25f : 0.5f * static_cast<float>(rng() % 511));
        }
        std::vector<uint8_t> luts(nq * nl * s_even * 16, 7);
        std::vector<float> step(nq);
        std::vector<double> off(nq * nl);
        medqk::ivf_quantize_tables(t.data(), nq, nl, s, luts.data(), step.data(), off.data());
        ++cases;
        for (std::size_t q = 0; q < nq; ++q) {
          float span = 0.0f;
          std::vector<float> lo(nl * s);
          for (std::size_t j = 0; j < nl * s; ++j) {
            const float* r = t.data() + (q * nl * s + j) * 16;
            lo[j] = *std::min_element(r, r + 16);
            span = std::max(span, *std::max_element(r, r + 16) - lo[j]);
          }
          const float st = span > 0.0f ? span / 127.0f : 1.0f, inv = 1.0f / st;
          bool ok = step[q] == st;
          for (std::size_t l = 0; l < nl; ++l) {
            double o = 0.0;
            for (std::size_t j = 0; j < s_even; ++j) {
              for (int c = 0; c < 16; ++c) {
                int want = 0;
                if (j < s) {
                  const float v = (t[((q * nl + l) * s + j) * 16 + c] - lo[l * s + j]) * inv;
                  want = std::min(127, std::max(0, static_cast<int>(std::nearbyint(v))));
                }
                ok = ok && luts[((q * nl + l) * s_even + j) * 16 + c] == want;
              }
              if (j < s) o += lo[l * s + j];
            }
            ok = ok && off[q * nl + l] == o;
          }
          if (!ok && failures++ < 10) std::printf("FAIL quantize s=%zu nlut=%zu kind=%d q=%zu\n", s, nl, kind, q);
        }
      }
    }
  }
  std::printf("ivf_search: %d cases, %d failures\n", cases, failures);
  return failures == 0 ? 0 : 1;
}
