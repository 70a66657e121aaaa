namespace ClipSharp;

/// <summary>
/// One label and the probability the model gives it for an image (<c>ClipPipeline.Classify</c>, <see cref="ClipEncoderExtensions.Classify"/>).
/// </summary>
/// <param name="Label">The label as it was given.</param>
/// <param name="Probability">Its share of the softmax over all labels, in [0, 1].</param>
public readonly record struct LabelProbability(string Label, float Probability)
{
    /// <summary>The label and its probability, e.g. <c>a cat: 0.9312</c>.</summary>
    public override string ToString() => $"{Label}: {Probability.ToString("F4", System.Globalization.CultureInfo.InvariantCulture)}";
}
