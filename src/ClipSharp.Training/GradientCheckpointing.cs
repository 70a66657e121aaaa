using ClipSharp.Modeling;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ClipSharp.Training;

/// <summary>
/// Gradient checkpointing for the transformer blocks of both towers: while autograd records, each block runs
/// without building its graph and keeps only its input; in the backward pass the block is run again from that
/// input with autograd on and back-propagated with the incoming gradient. Peak memory then holds one block's
/// activations plus every block's input, instead of every block's activations, for about one extra forward pass
/// of compute. Gradients are those of the plain forward (the blocks are deterministic: no dropout).
/// </summary>
internal static class GradientCheckpointing
{
    /// <summary>Turns gradient checkpointing on for both towers' transformer blocks (a ResNet image tower is left as it is).</summary>
    public static void Enable(ClipModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        foreach (var t in Transformers(model)) t.BlockRunner = Run;
    }

    /// <summary>Turns gradient checkpointing off again.</summary>
    public static void Disable(ClipModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        foreach (var t in Transformers(model)) t.BlockRunner = null;
    }

    /// <summary>Whether <see cref="Enable"/> is in effect for the text transformer.</summary>
    public static bool IsEnabled(ClipModel model) => model.TextTransformer.BlockRunner is not null;

    private static IEnumerable<Modeling.Transformer> Transformers(ClipModel model)
    {
        yield return model.TextTransformer;
        if (model.Visual is VisionTransformer vit) yield return vit.Transformer;
    }

    /// <summary>
    /// Runs <paramref name="block"/> on <paramref name="x"/> as one autograd node that stores only <paramref name="x"/>
    /// (and references to the block's trainable parameters) and recomputes the block in backward.
    /// </summary>
    public static Tensor Run(ResidualAttentionBlock block, Tensor x)
    {
        var trainable = block.parameters().Where(p => p.requires_grad).ToArray();
        if (!torch.is_grad_enabled() || (!x.requires_grad && trainable.Length == 0)) return block.forward(x);
        // The parameters are inputs of the node, so their gradients flow through the engine (and accumulate
        // into .grad) even when x itself needs none, e.g. above frozen layers.
        var args = new object[2 + trainable.Length];
        args[0] = x;
        args[1] = new CheckpointedBlock.State(block, trainable, x.requires_grad);
        for (int i = 0; i < trainable.Length; i++) args[2 + i] = trainable[i];
        return CheckpointedBlock.apply(args);
    }
}

/// <summary>The custom autograd function behind <see cref="GradientCheckpointing.Run"/>.</summary>
internal sealed class CheckpointedBlock : torch.autograd.SingleTensorFunction<CheckpointedBlock>
{
    /// <summary>What backward needs besides the saved input.</summary>
    internal sealed record State(ResidualAttentionBlock Block, Parameter[] Trainable, bool InputNeedsGrad);

    public override string Name => nameof(CheckpointedBlock);

    public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
    {
        // TorchSharp runs this with autograd off: nothing inside the block is recorded.
        var x = (Tensor)vars[0];
        var state = (State)vars[1];
        ctx.save_for_backward([x]);
        ctx.save_data("state", state);
        return state.Block.forward(x);
    }

    public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor gradOutput)
    {
        var state = (State)ctx.get_data("state");
        var saved = ctx.get_saved_variables();
        var result = new List<Tensor>(2 + state.Trainable.Length);
        using (var scope = NewDisposeScope())
        {
            var x = saved[0].detach().requires_grad_(state.InputNeedsGrad);
            Tensor y;
            using (torch.enable_grad()) y = state.Block.forward(x);
            var inputs = new List<Tensor>(1 + state.Trainable.Length);
            if (state.InputNeedsGrad) inputs.Add(x);
            inputs.AddRange(state.Trainable);
            var grads = torch.autograd.grad([y], inputs, [gradOutput]);
            int k = 0;
            result.Add(state.InputNeedsGrad ? grads[k++] : null!);
            result.Add(null!); // the State argument is not a tensor
            for (int i = 0; i < state.Trainable.Length; i++) result.Add(grads[k++]);
            // The engine reads the returned handles after this method returns: keep them alive in the caller's scope.
            foreach (var g in result) g?.MoveToOuterDisposeScope();
        }
        foreach (var s in saved) s.Dispose();
        return result;
    }
}
