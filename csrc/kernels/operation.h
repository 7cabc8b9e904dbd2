// An operation's tag, for the dispatch (runtime::kernel<Op>, runtime/dispatch.h): Op::Fn is what one variant
// provides. For an operation whose variants are single functions of one signature S:
//   MEDQK_KERNEL_OPERATION(PqAssignOp, PqAssign)  ->  using PqAssignFn = PqAssign*; struct PqAssignOp {...};
#pragma once

#define MEDQK_KERNEL_OPERATION(Op, Signature) \
  using Signature##Fn = Signature*;           \
  struct Op {                                 \
    using Fn = Signature##Fn;                 \
  };
