using ClipSharp.Modeling;

namespace ClipSharp.Training;

/// <summary>Recomputing transformer activations in the backward pass (trades compute for memory).</summary>
public static class GradientCheckpointing
{
    /// <summary>Turns gradient checkpointing on for both towers' transformer blocks.</summary>
    /// <exception cref="NotSupportedException">Not available in this build yet.</exception>
    public static void Enable(ClipModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        throw new NotSupportedException("model.grad_checkpointing is not implemented yet");
    }
}
