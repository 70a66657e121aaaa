using ClipSharp.Checkpoints;
using TorchSharp;

namespace ClipSharp.Imaging;

/// <summary>
/// TorchSharp tensors from <see cref="ClipImagePreprocessor"/> (the preprocessor itself lives in ClipSharp.Core and
/// writes plain float arrays and spans).
/// </summary>
public static class ClipImagePreprocessorTensors
{
    extension(ClipImagePreprocessor preprocessor)
    {
        /// <summary>Processes one image file into a float32 tensor of shape [3, n, n].</summary>
        /// <param name="path">The image file.</param>
        /// <returns>A new CPU tensor; the caller owns it.</returns>
        public torch.Tensor ProcessToTensor(string path)
            => torch.tensor(preprocessor.Process(path), [3, preprocessor.Size, preprocessor.Size]);

        /// <summary>
        /// Processes several image files in parallel into one float32 tensor of shape [N, 3, n, n].
        /// If any file fails, the exception of the first failing file (in list order) is rethrown.
        /// </summary>
        /// <param name="paths">The image files.</param>
        /// <returns>A new CPU tensor; the caller owns it.</returns>
        public torch.Tensor ProcessBatch(IReadOnlyList<string> paths)
        {
            ArgumentNullException.ThrowIfNull(paths);
            int size = preprocessor.Size;
            // Written straight into the tensor's storage: no managed copy of the batch and no second pass to copy it.
            var batch = torch.empty([paths.Count, 3, size, size], torch.ScalarType.Float32);
            try
            {
                FillBatch(preprocessor, paths, batch);
            }
            catch
            {
                batch.Dispose();
                throw;
            }
            return batch;
        }

        /// <summary>Wraps CHW floats (for example from <see cref="ClipImagePreprocessor.Process(string)"/>) as a [3, n, n] tensor.</summary>
        /// <param name="chw">3 × size × size floats.</param>
        /// <param name="size">n.</param>
        /// <returns>A new CPU float32 tensor.</returns>
        public static torch.Tensor ToTensor(float[] chw, int size)
        {
            ArgumentNullException.ThrowIfNull(chw);
            if (chw.Length != 3 * size * size)
                throw new ArgumentException($"Expected {3 * size * size} floats, got {chw.Length}.", nameof(chw));
            return torch.tensor(chw, [3, size, size]);
        }
    }

    private static unsafe void FillBatch(ClipImagePreprocessor preprocessor, IReadOnlyList<string> paths, torch.Tensor batch)
    {
        int per = preprocessor.OutputLength;
        var errors = new Exception?[paths.Count];
        fixed (byte* storage = TensorBytes.Span(batch))
        {
            float* data = (float*)storage;
            Parallel.For(0, paths.Count, i =>
            {
                try
                {
                    preprocessor.ProcessInto(paths[i], new Span<float>(data + (long)i * per, per));
                }
                catch (Exception e)
                {
                    errors[i] = e;
                }
            });
        }
        foreach (var e in errors)
            if (e is not null)
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e).Throw();
    }
}
