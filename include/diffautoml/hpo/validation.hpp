#pragma once
// Validation data for hypergradients: only a held-out slice of a training set (ValidationSet,
// made by hold_out()), so hyperparameters cannot be tuned on test data through this API.
#include <cstdint>
#include <utility>
#include <vector>

#include "../core/state.hpp"
#include "../data/dataset.hpp"

namespace diffautoml::hpo {

/// Batches of a validation slice held out from a training set. It can only be made by hold_out(),
/// which accepts only data marked Split::train, so hyperparameters cannot be tuned on test data
/// through this API.
class ValidationSet {
public:
    std::int64_t size() const { return data_->size(); }
    const data::Dataset& data() const { return *data_; }
    /// The next shuffled validation batch (cycling through the slice, reshuffled each pass).
    data::Batch next(std::int64_t batch_size) {
        DAM_CHECK(batch_size >= 1 && batch_size <= data_->size(), value_error,
                  "ValidationSet: batch size {} must be in [1, {}]", batch_size, data_->size());
        if (!loader_ || loader_batch_ != batch_size) {
            loader_ = std::make_unique<data::BatchLoader>(*data_, batch_size, true, seed_, true);
            loader_batch_ = batch_size;
            loader_->start_epoch(epoch_++);
        }
        if (!loader_->has_next()) loader_->start_epoch(epoch_++);
        return loader_->next();
    }
    std::int64_t passes() const { return epoch_; }
    /// Where the batches are, for checkpoints.
    void save_state(ByteWriter& w) const {
        w.put<std::int64_t>(epoch_);
        w.put<std::int64_t>(loader_ ? loader_batch_ : 0);
        w.put<std::int64_t>(loader_ ? loader_->epoch() : 0);
        w.put<std::int64_t>(loader_ ? loader_->position() : 0);
    }
    void load_state(ByteReader& r) {
        epoch_ = r.get<std::int64_t>();
        loader_batch_ = r.get<std::int64_t>();
        const auto e = r.get<std::int64_t>(), pos = r.get<std::int64_t>();
        loader_.reset();
        if (loader_batch_ > 0) {
            DAM_CHECK(loader_batch_ <= data_->size(), format_error, "ValidationSet: corrupt state (batch {})", loader_batch_);
            loader_ = std::make_unique<data::BatchLoader>(*data_, loader_batch_, true, seed_, true);
            loader_->seek(e, pos);
        }
    }

private:
    ValidationSet(data::Dataset d, std::uint64_t seed)
        : data_(std::make_shared<const data::Dataset>(std::move(d))), seed_(seed) {}
    friend std::pair<data::Dataset, ValidationSet> hold_out(const data::Dataset&, std::int64_t, std::uint64_t);
    std::shared_ptr<const data::Dataset> data_;  // a stable address for the loader, however the set is moved
    std::uint64_t seed_;
    std::unique_ptr<data::BatchLoader> loader_;
    std::int64_t loader_batch_ = 0, epoch_ = 0;
};

/// Splits `train` into (the images left for training, a validation slice of `size` images).
inline std::pair<data::Dataset, ValidationSet> hold_out(const data::Dataset& train, std::int64_t size, std::uint64_t seed) {
    DAM_CHECK(train.split != data::Split::test, value_error,
              "hold_out: this dataset is a test set; hyperparameters must be tuned on a slice of the training set "
              "(load it with train = true), never on the test set");
    DAM_CHECK(train.split == data::Split::train, value_error,
              "hold_out: the dataset is not marked as training data; load it with load_fashion_mnist(dir, true) or "
              "set IdxDatasetOptions::split = data::Split::train for training files (test files can never be used)");
    DAM_CHECK(size >= 1, value_error, "hold_out: the validation slice needs at least 1 image, got {}", size);
    auto [rest, val] = data::split_train_val(train, size, seed);
    return {std::move(rest), ValidationSet(std::move(val), seed ^ 0x76a1u)};
}

}  // namespace diffautoml::hpo
